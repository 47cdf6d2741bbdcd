# streamrec: the two commands are `make run` (embedded demo) and `make test` (whole suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export OPENBLAS_NUM_THREADS ?= 1
export STREAMREC_CACHE ?= $(HOME)/.cache/streamrec
PYTEST_ARGS ?=
ARGS ?=

.PHONY: test test-slow run venv provision image registry cluster lint unit bench bench-quality clean help settings

help:
	@echo "make run    - start the embedded demo (streams MovieLens-100K, prints recommendations)"
	@echo "make test   - venv + real test infrastructure (Kafka, MinIO, kube-apiserver) + image + lint + all tests"
	@echo "make image  - build services/Dockerfile into streamrec:<version> (podman, or Docker if present); PUSH=HOST:PORT pushes"
	@echo "make registry - run a local container registry on 127.0.0.1:5000 (Ctrl-C stops it)"
	@echo "make cluster - a real one-node Kubernetes (containerd, kubelet, CNI, CoreDNS) + registry with the image, until Ctrl-C"
	@echo "make lint   - ruff and mypy (strict on services/)"
	@echo "make settings - regenerate docs/configuration.md's tables, both CRDs and values.schema.json from the settings table"
	@echo "make bench  - the speed benchmarks (every bench/*.py but the long runs; budget 1110 s, each under its own) into bench/results/, docs/benchmarks.md"
	@echo "make bench-quality - the long runs: the MovieLens quality replays (bench/quality.py 480 s, bench/api_quality.py 720 s, both protocols) the training engines (bench/engines.py 600 s) item search with its prequential replay (bench/ann.py 240 s) the serving groups' forwarding, fold-in and freshness (bench/groups.py 180 s) and a 10M-user snapshot per group (bench/scale.py 360 s); budget 2580 s"

# The venv is rebuilt when pyproject.toml changes (scripts/venv.sh: pip upgraded first, each pip
# step retried on a broken download, then `pip check`).
$(VENV)/.installed: pyproject.toml scripts/venv.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	bash scripts/venv.sh $(PY)
	@touch $@

venv: $(VENV)/.installed

provision:
	bash scripts/provision.sh

lint: venv
	$(VENV)/bin/ruff check services tests bench demo
	$(VENV)/bin/mypy

# The files generated from the settings table (services/streamrec/settings/rows.py);
# tests/unit/test_settings.py fails while a committed one differs.
settings: venv
	$(PY) -m streamrec.settings.render

# The container image (scripts/image.sh; layers cached, a no-change rebuild takes seconds).
PUSH ?=
image:
	bash scripts/image.sh $(if $(PUSH),--push $(PUSH))

registry:
	bash scripts/registry.sh

# The tests' real node for humans (tests/infra/run_cluster.py; root, docs/kubernetes.md).
cluster: venv provision image
	$(PY) -m tests.infra.run_cluster $(ARGS)

# The real-node end-to-end tests run in a pytest session of their own beside the rest
# (scripts/test.sh: they mostly wait); with PYTEST_ARGS, one plain session.
test: venv provision image lint
	bash scripts/test.sh $(PY) $(PYTEST_ARGS)

# The full-size fault and soak variants (100k fuzzed events, 20 kills, 60 s soak...), ~15 min.
test-slow: venv provision
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

unit: venv
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

run: venv
	$(PY) demo/run_demo.py $(ARGS)

# The speed suite: every bench/*.py but the quality replays, with a progress bar, each under its
# own budget (bench/_runner.py BUDGETS, for a quiet box; stretched by the load average per CPU,
# at most 2.5x, on a shared one; BENCH_TIMEOUT overrides), the whole run under their sum
# (1,110 s on a quiet box, under 20 minutes; at most 2.5x that; BENCH_BUDGET overrides); ARGS=--quick
# for a short run. Writes
# bench/results/<date>.{json,md} (key figures against same-run references first) and
# regenerates docs/benchmarks.md (the quality suite's last results collected into it).
bench: venv
	$(PY) bench/_runner.py --suite speed $(ARGS)

# The long runs: the MovieLens replays (bench/quality.py, bench/api_quality.py), the training
# engines' 1M-event fits (bench/engines.py), item search at 1M items (bench/ann.py) and the
# serving groups (bench/groups.py) and a 10M-user snapshot per serving group (bench/scale.py),
# 2,580 s.
bench-quality: venv
	$(PY) bench/_runner.py --suite quality $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
