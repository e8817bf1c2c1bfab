# aistack.fleet developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
BIN       := $(CURDIR)/$(VENV)/bin
PYTHON    ?= python3
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export MOLECULE_GLOB := molecule/*/molecule.yml

# Molecule scenarios and the Debian releases each one runs on: the fleet (every tier and
# procedure) on trixie, the smoke scenario on the second release.
SCENARIOS        ?= $(filter-out _% %_bench,$(notdir $(wildcard molecule/*)))
DISTROS          ?= trixie
DISTROS_smoke    ?= bookworm

.PHONY: help venv deps engine images lab lab-down lint sanity unit package lab-test readmes awx-surveys ee molecule bench-nginx_lb bench-release bench-deploy bench-app bench-redis bench-converge test clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	mkdir -p .collections/ansible_collections/aistack
	ln -sfn ../../.. .collections/ansible_collections/aistack/fleet
	touch $@

venv: $(VENV)/.installed ## Create the pinned development environment in .venv

deps: ## Make sure the Debian tools the tests run against are there (installs them as root)
	@tools/deps.sh

engine: ## Make sure a Docker engine runs (installs docker.io and starts it as root)
	@tools/lab/engine.sh

images: engine ## Build the trixie and bookworm systemd base images (only when their recipe changed)
	@tools/lab/images.sh trixie bookworm

lab: venv images ## Bring the lab fleet up and converge the fleet on it
	ansible-playbook playbooks/lab/up.yml
	ansible-playbook playbooks/site.yml

lab-down: venv ## Remove the lab fleet (containers, network, volumes)
	ansible-playbook playbooks/lab/down.yml

lint: venv ## ansible-lint (production profile), yamllint, ruff
	ansible-lint
	yamllint --strict .
	ruff check .
	ruff format --check .

sanity: venv ## ansible-test sanity in an ansible_collections/aistack/fleet tree
	@tools/sanity.sh

unit: venv ## Unit tests (pytest over tests/unit and the example apps' own tests, four workers)
	pytest -n 4 tests/unit $(wildcard examples/*/tests)

package: venv ## Build the collection artifact, install it and use it
	pytest tests/packaging

readmes: venv ## Write each role's README.md from its argument specs (the unit suite fails on a stale one)
	python tools/role_readme.py

awx-surveys: venv ## Write awx/surveys/ from the procedures' argument specs (the unit suite fails on a stale one)
	python tools/awx_surveys.py

ee: venv images ## Build the execution environment (awx/execution-environment.yml) offline with ansible-builder
	tools/ee/build.sh

lab-test: venv images ## The lab fleet's life cycle: up, reach every host, down leaves nothing
	pytest tests/lab

molecule: venv images deps ee ## Every molecule scenario on its Debian releases, each action timed
	@set -e; $(foreach s,$(SCENARIOS),$(foreach d,$(or $(DISTROS_$(s)),$(DISTROS)),\
	  echo "== molecule scenario $(s) on $(d)"; AISTACK_LAB_DISTRO=$(d) python3 tools/molecule_timed.py $(s) $(s)/$(d);))

bench-nginx_lb: venv images ## Benchmark: requests/s and p99 through the LB with TLS and with plain HTTP to the backends, versus one backend (wrk)
	molecule converge -s fleet
	AISTACK_BENCH=nginx_lb molecule side-effect -s fleet; status=$$?; molecule destroy -s fleet; exit $$status

bench-release: venv images ## Benchmark: release deploy time to 2 and 4 hosts, wheelhouse built once vs index per host
	molecule converge -s release_bench
	molecule side-effect -s release_bench; status=$$?; molecule destroy -s release_bench; exit $$status

bench-deploy: venv images deps ## Benchmark: failed requests (keep-alive, per request), p99, total time and time out of rotation per host, rolling deploy vs naive restart
	molecule converge -s fleet
	AISTACK_BENCH=deploy molecule side-effect -s fleet; status=$$?; molecule destroy -s fleet; exit $$status

bench-app: venv images ## Benchmark: /v1/infer req/s and p50/p99 per host and through the LB, LB cost at 200 req/s, WebSockets held
	molecule converge -s fleet
	AISTACK_BENCH=app molecule side-effect -s fleet; status=$$?; molecule destroy -s fleet; exit $$status

bench-redis: venv images ## Benchmark: Redis failover time over 5 runs under a writer; snapshot and restore of 1 million keys
	molecule converge -s fleet
	AISTACK_BENCH=redis molecule side-effect -s fleet; status=$$?; molecule destroy -s fleet; exit $$status

bench-converge: venv images ## Benchmark: cold and warm aistack.fleet.site on the lab, per host and in total (BASE=ref compares)
	@tools/bench_converge.sh $(BASE)

test: venv deps ## Everything CI runs: lint, sanity, unit, package, lab-test, molecule
	@tools/stages.sh lint sanity unit package lab-test molecule

clean: ## Remove build and test leftovers (not .venv)
	rm -rf .cache tests/output aistack-fleet-*.tar.gz
