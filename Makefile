# Tsukuba Super Science City course -- thin targets; each calls sscity or pytest.
#
#   make demo       set up (if needed), release, build a demo class of 40 and grade it
#   make test       set up (if needed), run the whole test suite
#   make test-fast  the quick subset for development (no notebook execution)
#   make test-classroom  JupyterLab in Chromium and a JupyterHub class server, end to end
#   make verify     solution full marks, blank 0, known-wrong answers fail, per module
#   make lab        JupyterLab on modules/ for students; PORT=8888, LAB_ARGS="--ip 0.0.0.0 --no-browser"
#                   on a remote or headless machine, LAB_ARGS=--instructor for formgrader
#   make lint       the authoring rules (sscity course lint)
#   make bench      timings, one line each: BENCH <name> <value> <unit>
#
# With no environment active (no virtualenv, no conda env other than base) the targets
# create .venv/ here with python3 (3.11 or newer) and install the course into it.

SHELL := /bin/bash
PYTHON_BOOT ?= python3
JOBS ?= 2
PORT ?=
LAB_ARGS ?=

ifneq ($(VIRTUAL_ENV),)
  ACTIVE_ENV := $(VIRTUAL_ENV)
else ifneq ($(filter-out base,$(CONDA_DEFAULT_ENV)),)
  ACTIVE_ENV := $(CONDA_PREFIX)
endif

ifdef ACTIVE_ENV
  PYTHON := python
  STAMP := .make/installed-$(subst /,_,$(ACTIVE_ENV))
else
  PYTHON := .venv/bin/python
  STAMP := .venv/.sscity-installed
endif
SSCITY := $(PYTHON) -m sscity

.PHONY: help setup demo verify test test-fast test-classroom lab lint bench release clean

help:
	@sed -n '2,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

.venv/bin/python:
	@$(PYTHON_BOOT) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
	  { echo "The course needs Python 3.11 or newer; '$(PYTHON_BOOT)' is $$($(PYTHON_BOOT) --version 2>&1)."; \
	    echo "Install Python 3.11+, or run: make PYTHON_BOOT=python3.11 demo"; exit 1; }
	$(PYTHON_BOOT) -m venv .venv

$(STAMP): pyproject.toml $(if $(ACTIVE_ENV),,.venv/bin/python)
	@mkdir -p $(dir $(STAMP))
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)

# Grading refuses to run student code without a sandbox: install bubblewrap where we may
# (root with apt-get), otherwise run the demo with --no-sandbox, which every output states.
demo: setup
	@command -v bwrap >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null 2>&1; } || true
	$(SSCITY) data verify
	$(SSCITY) course release
	@if $(PYTHON) -c 'import sys; from sscity.course.sandbox import isolation; sys.exit(0 if isolation().isolated else 1)'; then \
	  $(SSCITY) course demo --students 40 --jobs $(JOBS) --out demo-class; \
	else \
	  echo "*** NO SANDBOX: bubblewrap is missing or does not work here; the demo runs student code as you (--no-sandbox). Install bubblewrap for real grading. ***"; \
	  $(SSCITY) course demo --students 40 --jobs $(JOBS) --out demo-class --no-sandbox; \
	fi

verify: setup
	$(SSCITY) course verify --jobs $(JOBS)

test: setup
	$(PYTHON) -m pytest -n $(JOBS) --dist loadgroup

test-fast: setup
	$(PYTHON) -m pytest -m "not slow" -n $(JOBS) --dist loadgroup

# The classroom end to end: a real browser (Debian's chromium, driven by Playwright) and a
# JupyterHub with nbgrader's exchange (needs node's configurable-http-proxy and root for its
# test accounts). Each test says why when it skips. .ci/run installs what they need.
test-classroom: setup
	$(PYTHON) -m pip install --quiet -e '.[test,classroom]'
	$(PYTHON) -m pytest classroom_tests -q

lab: setup
	$(SSCITY) lab $(if $(PORT),--port $(PORT)) $(LAB_ARGS)

lint: setup
	$(SSCITY) course lint

bench: setup
	$(PYTHON) benchmarks/bench_course.py
	$(PYTHON) benchmarks/bench_platform.py
	$(PYTHON) benchmarks/bench_mobility.py
	$(PYTHON) benchmarks/bench_sensing.py
	$(PYTHON) benchmarks/bench_grading.py --students 40 --jobs $(JOBS)

release: setup
	$(SSCITY) course release

clean:
	rm -rf .make .pytest_cache submitted autograded feedback gradebook.db demo-class
