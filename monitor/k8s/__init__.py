"""Kubernetes access: the only package that imports ``kubernetes``.

``client`` (configuration, worker threads, one request per call), ``errors`` (API
failures as :mod:`monitor.errors`), ``names`` (validation of targets from alert
labels), ``workloads`` (reading replicas, HPAs, revisions) and ``rbac`` (the Role an
action set needs).
"""

from __future__ import annotations
