.PHONY: demo run test

# The whole loop (alert -> remediation -> verification -> revert, and an escalation to a
# page) on 127.0.0.1 in under a minute, with a timeline. See docs/demo.md.
demo: .venv/.test-deps
	.venv/bin/python -m demo.run

run:
	./scripts/run

test:
	./scripts/test

.venv/.test-deps: pyproject.toml
	scripts/install-services
	[ -x .venv/bin/python ] || python3 -m venv .venv
	.venv/bin/pip install -q --disable-pip-version-check -e ".[test]"
	touch $@
