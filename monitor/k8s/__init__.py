"""Kubernetes access: the only package that imports ``kubernetes``.

``client`` (configuration, worker threads, typed errors), ``errors`` (API failures as
:mod:`monitor.errors`), ``retry`` (bounded backoff), ``names`` (validation of targets
from alert labels), ``workloads`` (reading replicas, HPAs, revisions) and ``rbac``
(the Role an action set needs).
"""

from __future__ import annotations
