# DermKiosk: build, run, test and install.  Every target installs what it needs itself.
#
#   make run            the whole demo on this machine (broker, ingest, dashboard, kiosk)
#   make test           everything the tests need, then pytest
#   make model          reproduce the shipped lesion model (separate training venv)
#   make bench          run each benchmark in bench/
#   make install-kiosk  on a Raspberry Pi: user, app, venv, config, systemd unit
#   make install-centre on the centre server: user, app, venv, config, systemd units
#   make clean          remove run-time state and build leftovers (distclean: venvs too)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.dermkiosk-installed

TRAIN_VENV := .venv-train
TRAIN_REQ := models/requirements-train.txt
TRAIN_STAMP := $(TRAIN_VENV)/.dermkiosk-installed
# The lead's pipeline entry point: train, quantise to int8 TFLite, write models/lesion/ + manifest.
TRAIN_MODULE ?= models.build
MODEL_ARGS ?=

PYTEST_ARGS ?=
# pytest-xdist workers for `make test`: one per core, at most 4 (each test file runs whole on one worker,
# so its module fixtures are made once); TEST_JOBS=0 runs the suite in this one process.
TEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ "$$n" -gt 4 ] && n=4; echo $$n)

# apt needs root: use sudo when we are not root and sudo exists.
SUDO := $(shell if [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then echo sudo; fi)
APT_ENV := DEBIAN_FRONTEND=noninteractive

# Installation on a kiosk or a centre server.
PREFIX ?= /opt/dermkiosk
CONF_DIR ?= /etc/dermkiosk
DATA_DIR ?= /var/lib/dermkiosk
UNIT_DIR ?= /etc/systemd/system
SERVICE_USER ?= dermkiosk
# The services run as $(SERVICE_USER) with ProtectHome=yes: their venv must use a Python outside
# /root and /home (Debian's), not a pyenv shim.
INSTALL_PYTHON ?= /usr/bin/python3
KIOSK_CONFIG ?= firmware_config/kiosk.pi.toml
CENTRE_CONFIG ?= firmware_config/centre.server.toml
# What the services need of the source tree (installed to $(PREFIX)/app, their working directory).
APP_FILES := $(wildcard pyproject.toml README.md wire edge dashboard firmware_config)
# The shipped model goes to $(PREFIX)/models/lesion; the kiosk copies it to its data folder on first
# start (kiosk.pi.toml: model_seed_dir), where signed updates replace it.
MODEL_FILES := models/lesion

.PHONY: help venv deps-apt deps-apt-test run test model bench bench-faults install-kiosk install-centre \
        install-app install-user clean distclean deps-axe

help:
	@sed -n '2,10s/^# \{0,1\}//p' Makefile

# ---------------------------------------------------------------- system packages (apt)
# apt_install: install the named Debian packages that are missing (apt-get update only then).
define apt_install
missing=""; \
for pkg in $(1); do \
  dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$pkg"; \
done; \
if [ -n "$$missing" ]; then \
  if [ "$$(id -u)" -ne 0 ] && [ -z "$(SUDO)" ]; then \
    echo "need root (or sudo) to install:$$missing" >&2; exit 1; fi; \
  echo "apt: installing$$missing"; \
  $(SUDO) apt-get update -qq; \
  $(SUDO) env $(APT_ENV) apt-get install -y -qq $$missing; \
fi
endef

# deps-apt: what `make run` needs: mosquitto, and python3-venv where the Python has no venv/ensurepip;
# Orthanc with its DICOMweb plugin (the hospital's PACS in the demo and the tests; the demo runs its own on a
# free port, whatever the package's system service does) and dicom3tools (dciodvfy checks exported DICOM).
deps-apt:
	@pkgs=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || pkgs="$$pkgs mosquitto"; \
	[ -x /usr/sbin/Orthanc ] || pkgs="$$pkgs orthanc"; \
	[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || pkgs="$$pkgs orthanc-dicomweb"; \
	command -v dciodvfy >/dev/null 2>&1 || pkgs="$$pkgs dicom3tools"; \
	$(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || pkgs="$$pkgs python3-venv"; \
	$(call apt_install,$$pkgs)

# deps-apt-test: plus Debian's Chromium (Playwright drives it; no browser download),
# systemd-analyze (the unit files are verified), npm (axe-core for the kiosk page's accessibility tests)
# and prometheus for its promtool (the /metrics exposition is checked as Prometheus itself reads it).
deps-apt-test: deps-apt
	@pkgs=""; \
	command -v promtool >/dev/null 2>&1 || pkgs="$$pkgs prometheus"; \
	[ -x /usr/bin/chromium ] || pkgs="$$pkgs chromium"; \
	command -v npm >/dev/null 2>&1 || pkgs="$$pkgs npm"; \
	command -v systemd-analyze >/dev/null 2>&1 || pkgs="$$pkgs systemd"; \
	[ -x /usr/sbin/Orthanc ] || pkgs="$$pkgs orthanc"; \
	[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || pkgs="$$pkgs orthanc-dicomweb"; \
	command -v dciodvfy >/dev/null 2>&1 || pkgs="$$pkgs dicom3tools"; \
	$(call apt_install,$$pkgs)

# ---------------------------------------------------------------- Python venv
venv: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml | deps-apt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) -m pip install -q -e '.[test]'
	@touch $@

# ---------------------------------------------------------------- run, test, bench
run: venv
	$(PY) demo.py $(DEMO_ARGS)

# deps-axe: npm's axe-core (pinned by tests/axe/package-lock.json) into tests/axe/node_modules (gitignored).
AXE_JS := tests/axe/node_modules/axe-core/axe.min.js
deps-axe: $(AXE_JS)
$(AXE_JS): tests/axe/package.json tests/axe/package-lock.json | deps-apt-test
	npm ci --prefix tests/axe --no-audit --no-fund --silent
	@touch $@

test: deps-apt-test venv deps-axe
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) -m pytest -q -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)

# bench: every bench/*.py as a module (`make bench BENCH=classifier_speed` for one); each prints
# its figures.  Benchmarks that read the real data set find it in ../shared/data.
BENCH ?=
bench: venv
	@shopt -s nullglob; \
	if [ -n "$(BENCH)" ]; then names="$(BENCH)"; else \
	  names=""; for f in bench/*.py; do n=$$(basename "$$f" .py); \
	    case "$$n" in __init__|_*) ;; *) names="$$names $$n";; esac; done; fi; \
	[ -n "$$names" ] || { echo "no benchmarks in bench/" >&2; exit 1; }; \
	failed=""; \
	for n in $$names; do \
	  echo "== bench/$$n.py"; $(PY) -m "bench.$$n" || failed="$$failed $$n"; \
	done; \
	if [ -n "$$failed" ]; then echo "failed:$$failed" >&2; exit 1; fi

# bench-faults: the fault suite (issue 5): 200 trials of kill -9 of the kiosk / ingest and broker
# restarts with real processes; ends with `captured=N delivered=N lost=L duplicated=D`.
bench-faults: venv
	$(PY) -m bench.faults --trials 200

# ---------------------------------------------------------------- model (separate training venv)
$(TRAIN_STAMP): $(TRAIN_REQ)
	@test -x $(TRAIN_VENV)/bin/python || $(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/python -m pip install -q -r $(TRAIN_REQ)
	@touch $@

$(TRAIN_REQ):
	@echo "$@ is missing: it lists the training packages (torch, ...) for .venv-train" >&2; exit 1

model: $(TRAIN_STAMP)
	$(TRAIN_VENV)/bin/python -m $(TRAIN_MODULE) $(MODEL_ARGS)

# ---------------------------------------------------------------- install on a Pi / a server
# Needs root.  Idempotent: a second run upgrades the app and venv, never overwrites a config.
define need_root
@if [ "$$(id -u)" -ne 0 ]; then echo "run as root: sudo make $@" >&2; exit 1; fi
endef

install-user:
	$(need_root)
	@id -u $(SERVICE_USER) >/dev/null 2>&1 || \
	  useradd --system --user-group --home-dir $(DATA_DIR) --no-create-home \
	          --shell /usr/sbin/nologin --comment "DermKiosk services" $(SERVICE_USER)
	@getent group video >/dev/null && usermod -a -G video $(SERVICE_USER) || true
	install -d -m 0750 -o $(SERVICE_USER) -g $(SERVICE_USER) $(DATA_DIR)
	install -d -m 0750 -o root -g $(SERVICE_USER) $(CONF_DIR)

install-app: install-user
	$(need_root)
	@$(call apt_install,python3 python3-venv python3-pip)
	install -d -m 0755 $(PREFIX) $(PREFIX)/app
	tar -c --exclude=__pycache__ --exclude='*.pyc' $(APP_FILES) | tar -x --no-same-owner -C $(PREFIX)/app
	tar -c $(MODEL_FILES) | tar -x --no-same-owner -C $(PREFIX)
	@# --system-site-packages: picamera2 and libcamera come from apt on Raspberry Pi OS.
	@test -x $(PREFIX)/venv/bin/python || $(INSTALL_PYTHON) -m venv --system-site-packages $(PREFIX)/venv
	$(PREFIX)/venv/bin/python -m pip install -q --upgrade $(PREFIX)/app

# install_units: copy unit files ($(1)) and enable units ($(2), default the same: a template such as
# dermkiosk-ingest@.service is enabled by instance); install_conf: copy an example config unless one is there.
define install_units
install -d -m 0755 $(UNIT_DIR)
install -m 0644 $(addprefix systemd/,$(1)) $(UNIT_DIR)/
if [ -d /run/systemd/system ]; then \
  systemctl daemon-reload; systemctl enable $(or $(2),$(1)); systemctl try-restart $(or $(2),$(1)); \
else echo "systemd is not running here: units copied to $(UNIT_DIR), not enabled"; fi
endef
# install_addresses: the drop-in that lets units ($(2)) reach the broker of config $(1) (issue 25: the
# units allow loopback only); BROKER_ADDRESSES="10.0.0.5 10.1.0.0/24" adds addresses or ranges.
BROKER_ADDRESSES ?=
define install_addresses
for u in $(2); do install -d -m 0755 $(UNIT_DIR)/$$u.d; \
  $(PREFIX)/venv/bin/python systemd/allowed_addresses.py $(1) --extra "$(BROKER_ADDRESSES)" > $(UNIT_DIR)/$$u.d/10-addresses.conf \
  || echo "WARNING: $$u may reach loopback only: set the broker url in $(1), then run this again"; done
endef
define install_conf
@if [ -e $(2) ]; then echo "keeping $(2)"; else \
  test -f $(1) || { echo "missing $(1)" >&2; exit 1; }; \
  install -m 0640 -o root -g $(SERVICE_USER) $(1) $(2); echo "installed $(2): edit it, then start the service"; fi
endef

install-kiosk: install-app
	@if apt-cache show python3-picamera2 >/dev/null 2>&1; then $(call apt_install,python3-picamera2); fi
	$(call install_conf,$(KIOSK_CONFIG),$(CONF_DIR)/kiosk.toml)
	$(call install_addresses,$(CONF_DIR)/kiosk.toml,dermkiosk-kiosk.service)
	$(call install_units,dermkiosk-kiosk.service)
	@echo "kiosk installed.  Check the config:"
	@echo "  cd $(PREFIX)/app && sudo -u $(SERVICE_USER) $(PREFIX)/venv/bin/python -m edge check-config --config $(CONF_DIR)/kiosk.toml"
	@echo "then: systemctl start dermkiosk-kiosk; journalctl -u dermkiosk-kiosk -f"

# INGEST_INSTANCES=2: two ingest processes (dermkiosk-ingest@1, @2), each with its own certificate.
INGEST_INSTANCES ?= 1
INGEST_UNITS = $(foreach n,$(shell seq 1 $(INGEST_INSTANCES)),dermkiosk-ingest@$(n).service)

install-centre: install-app
	@$(call apt_install,mosquitto)
	$(call install_conf,$(CENTRE_CONFIG),$(CONF_DIR)/centre.toml)
	@# The ingest unit became a template (dermkiosk-ingest@N); retire the single unit of older installs.
	@if [ -e $(UNIT_DIR)/dermkiosk-ingest.service ]; then \
	  systemctl disable --now dermkiosk-ingest.service 2>/dev/null || true; rm -f $(UNIT_DIR)/dermkiosk-ingest.service; fi
	$(call install_addresses,$(CONF_DIR)/centre.toml,dermkiosk-ingest@.service dermkiosk-dashboard.service)
	$(call install_units,dermkiosk-ingest@.service dermkiosk-dashboard.service,$(INGEST_UNITS) dermkiosk-dashboard.service)
	@echo "centre installed.  Edit $(CONF_DIR)/centre.toml, then:"
	@echo "  systemctl start $(INGEST_UNITS) dermkiosk-dashboard; journalctl -u 'dermkiosk-*' -f"
	@echo "(ingest N >= 2 needs its certificate: python -m dashboard pki --dir DIR issue-ingest --instance N)"

# ---------------------------------------------------------------- clean
clean:
	rm -rf var build dist .pytest_cache tests/artifacts bench/out *.egg-info
	find . -path ./$(VENV) -prune -o -path ./$(TRAIN_VENV) -prune -o -name __pycache__ -type d -print0 \
	  | xargs -0 rm -rf

distclean: clean
	rm -rf $(VENV) $(TRAIN_VENV)
