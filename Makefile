# Two commands for a newcomer: `make run` and `make test`. Both set up what they
# need first (Debian packages, kernel headers for bcc, the venv), idempotently.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PLUGINS := $(wildcard plugins/*/pyproject.toml)
# Runtime: bcc and its tools, kernel headers for bcc, bpftool, the venv module.
APT_run := python3-bpfcc bpfcc-tools linux-headers-$(shell dpkg --print-architecture) bpftool \
	python3-venv python3-pip
# Tests: real clients and servers (a DNS server and dig too, nmap for a real scan, a NATS
# server with JetStream) and the tools that check the probe; tshark is the replay tests'
# oracle, tcpdump writes their captures; nftables makes a peer that drops SYNs; systemd
# brings systemd-analyze, which checks the unit in packaging/ (no manager needs to run).
APT_test := curl iproute2 nginx-light util-linux dnsmasq-base bind9-dnsutils nmap tshark tcpdump \
	nftables nats-server systemd
# The benchmark: ab drives nginx (from the test set); tcpstates-bpfcc is in bpfcc-tools.
APT_bench := apache2-utils

.PHONY: setup setup-test run test bench soak fuzz clean .apt-run .apt-test .apt-bench

# Setup reports on stderr, so `make run` prints nothing but events on stdout.
run: setup
	@$(VENV)/bin/hostcore run --events flows

test: setup-test
	$(PY) -m ruff check hostcore plugins tests
	$(PY) -m ruff format --check hostcore plugins tests
	$(PY) -m mypy hostcore $(dir $(wildcard plugins/*/hostcore_*/__init__.py))
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Not part of `make test`: about 6 minutes of load; prints two tables (README: Performance).
bench: setup-test .apt-bench
	$(PY) tests/bench/bench.py $(BENCH_ARGS)
	$(PY) tests/bench/replay_bench.py

# Not part of `make test` either: 10 minutes of sustained connections and DNS answers; prints
# hostcore's RSS from start to end (README: Bounded memory). SOAK_ARGS="--duration 60" to try it.
soak: setup-test
	$(PY) tests/bench/soak.py $(SOAK_ARGS)

# Not part of `make test`, which runs each fuzzer briefly: FUZZ_RUNS inputs to each of the
# decoder, the DNS parser and the capture-file reader (atheris). Logs and crashers in .fuzz/.
FUZZ_RUNS := 1000000
FUZZ_TARGETS := decoder dns capture
fuzz: setup-test
	@mkdir -p .fuzz
	@for target in $(FUZZ_TARGETS); do \
		echo "fuzz: $$target, $(FUZZ_RUNS) inputs (log: .fuzz/$$target.log)" >&2; \
		$(PY) tests/fuzz/fuzz.py $$target --runs $(FUZZ_RUNS) --artifacts .fuzz \
			> .fuzz/$$target.log 2>&1; status=$$?; \
		grep -E '(DONE|^Done|crash|^==[0-9]+== ERROR|Uncaught)' .fuzz/$$target.log | tail -3; \
		[ $$status -eq 0 ] || { echo "fuzz: $$target failed: see .fuzz/$$target.log" >&2; exit 1; }; \
	done

setup: .apt-run $(VENV)/.installed
	@$(VENV)/bin/hostcore doctor --fix >&2

setup-test: .apt-test setup $(VENV)/.installed-test

.apt-run .apt-test .apt-bench: .apt-%:
	@pkgs="$(APT_$*)"; \
	missing=$$(for p in $$pkgs; do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "setup: installing Debian packages:" $$missing >&2; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml $(PLUGINS)
	@test -x $(PY) || { echo "setup: creating $(VENV) from /usr/bin/python3 (system site packages, for bcc)" >&2; \
		/usr/bin/python3 -m venv --system-site-packages $(VENV); }
	@echo "setup: installing hostcore and $(dir $(PLUGINS)) into $(VENV)" >&2
	@$(PY) -m pip install -q --disable-pip-version-check -e . $(addprefix -e ,$(dir $(PLUGINS))) >&2
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	@echo "setup: installing the test tools (pytest, mypy, ruff) into $(VENV)" >&2
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test]' >&2
	@touch $@

clean:
	rm -rf $(VENV) build *.egg-info plugins/*/build plugins/*/*.egg-info
