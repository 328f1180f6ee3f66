# CareBridge: the commands a developer and CI need. GNU make, bash.
#   make run     install what is missing, build the app, start the staff app hosting a demo node
#                and a kiosk beside it (make run-node: the demo node alone)
#   make run-exchange  a demo hospital and an insurer, peered, with a staff app window on each
#   make run-network   two hospitals and an insurer, peered: consented access across hospitals
#   make test    everything CI runs (.ci/run calls it): checks, then every test
#   make bench   the fan-out benchmark against the peers in ../shared/bench, the client core, the FHIR
#                export and the app; figures in docs/performance.md
#   make soak    the property tests with many more cases than `make test` runs
#   make package the Debian packages of the app and the node, as shipped (README)
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
# cargo parallelises by itself; keep prerequisites (deps before build) in order.
.NOTPARALLEL:
.DEFAULT_GOAL := help

# Debian packages the workspace needs to build and the README's demo needs to be tried.
# gcc, make and perl build the vendored OpenSSL and SQLCipher; curl and jq are for the demo.
# The desktop app adds its packages here (libwebkit2gtk-4.1-dev, ...).
# dbus-daemon + gnome-keyring: a private session bus with a real Secret Service for the keychain tests.
# The rest: Tauri on Linux (WebKitGTK), and the app's end-to-end run under Xvfb (WebKitWebDriver,
# dunst for notifications, imagemagick for screenshots; fonts-dejavu-core for report PDFs,
# poppler-utils to read them back in the tests). The Debian packages: dpkg-dev (dpkg-shlibdeps)
# and binutils (objcopy) to build them; systemd (systemd-analyze), desktop-file-utils and
# x11-utils (xwininfo) for their test. Imaging: Orthanc, the PACS (its package brings the
# worklist plugin; its own system service is not used: tests and the demo start their own), and
# dcmtk, which plays the modality (findscu, storescu, img2dcm, dcmodify). Printing: CUPS's
# client (lp, lpstat) for the app, and its daemon and `cups` (which brings the socket backend)
# for the tests' private print server; the system's CUPS service is not started. PostgreSQL:
# the node's second store backend; its tests start a throw-away cluster of their own
# (scripts/with-postgres.sh), never the system's service.
DEB_PACKAGES := gcc libc6-dev make perl curl jq ca-certificates dbus-daemon gnome-keyring \
	pkg-config libwebkit2gtk-4.1-dev libgtk-3-dev libsoup-3.0-dev librsvg2-dev \
	libayatana-appindicator3-dev libxdo-dev xvfb webkit2gtk-driver dunst imagemagick \
	fonts-dejavu-core poppler-utils python3 python3-venv \
	dpkg-dev binutils systemd desktop-file-utils x11-utils orthanc dcmtk \
	cups-daemon cups-client cups postgresql
# Added by `run-cluster`: the load balancer in front of the node processes.
CLUSTER_DEB_PACKAGES := nginx
# Added by `bench-deps`: nginx + nchan (a peer; nginx is also the benched cluster's load
# balancer), python3 for ../shared/bench/summarize.py. The node on PostgreSQL and the cluster
# use DEB_PACKAGES' postgresql (a throw-away server of the bench's own).
BENCH_DEB_PACKAGES := $(CLUSTER_DEB_PACKAGES) libnginx-mod-nchan python3 util-linux

# Schemathesis for the API contract test (crates/server/tests/contract.rs): pinned with all its
# dependencies, in a virtualenv outside the clone so that CI reuses it (Debian's python3).
SCHEMATHESIS_VENV ?= $(HOME)/.cache/carebridge-schemathesis
SCHEMATHESIS_REQUIREMENTS := crates/server/tests/contract/requirements.txt
export SCHEMATHESIS := $(SCHEMATHESIS_VENV)/bin/schemathesis

# aiosmtpd, the tests' real SMTP server (crates/testkit/src/smtp.rs), pinned and installed the
# same way. The kit runs its handler script with this venv's Python.
SMTP_VENV ?= $(HOME)/.cache/carebridge-smtp
SMTP_REQUIREMENTS := crates/testkit/smtp-requirements.txt
export AIOSMTPD_PYTHON := $(SMTP_VENV)/bin/python

SHARED_BENCH := ../shared/bench
SEED_DIR := $(SHARED_BENCH)/peers/express-seed

DEMO_DIR ?= target/demo
DEMO_LISTEN ?= 127.0.0.1:8080
# The demo's Orthanc (scripts/demo-pacs.sh): not Debian's service ports (8042, 4242), which its
# package may already be serving.
PACS_HTTP_PORT ?= 8043
PACS_DICOM_PORT ?= 4243
PACS_AET ?= CAREBRIDGE
PACS_USER ?= carebridge
PACS_PASSWORD ?= demo-pacs-password
PACS_HINT_TOKEN ?= demo-hint-token-0123456789
export PACS_HTTP_PORT PACS_DICOM_PORT PACS_AET PACS_USER PACS_PASSWORD PACS_HINT_TOKEN
# make run-exchange: both nodes' data, logs and sign-in files (the nodes listen on 8080 and 8081).
EXCHANGE_DIR ?= target/exchange
# make run-network: the three nodes' data, logs, sign-in files and the mail sink's log.
NETWORK_DIR ?= target/network
# make run-cluster's node directories and nginx's files (its PostgreSQL lives in a temporary directory).
CLUSTER_DIR ?= target/cluster
# The node's API suites that `make test` runs a second time with their nodes on PostgreSQL. Not
# `live`: it reads the hub's head right after a write, which on PostgreSQL moves a moment later
# (events reach the hub once placed); the cluster's tests cover the stream there.
POSTGRES_API_SUITES := api mail operations snapshot
# cargo honours CARGO_TARGET_DIR by itself; paths to what it built must too.
NODE_BIN = $${CARGO_TARGET_DIR:-target}/release/carebridge-node

# The Debian packages (README, "Installing on workstations and servers"): the app through Tauri's
# bundler (its CLI from ui/'s devDependencies, pinned by ui/package-lock.json; deb only: its
# AppImage and rpm bundlers fetch tools at build time), the node staged and built with dpkg-deb
# (scripts/package). `make package` builds what ships, in release: the app by `tauri build`, which
# adds tauri/custom-protocol. `make package-test` packages the debug builds with the same scripts
# and the same bundler, so that `make test` pays no release build: its app is `make run`'s, built
# without custom-protocol, which changes nothing here (no devUrl, no devCsp: the same embedded
# ui/dist under the same CSP). Measured on 2 cores shared with another build (2026-12-06):
# make package 43 min cold, 2.7 min warm; make package-test about 1 min warm, plus, in make test,
# the builds nextest's do not share: the node without the demo (about 140 of its 330 units in the
# dev profile) and 17 units of the app.
PACKAGE_DIR ?= target/packages
PACKAGE_TEST_DIR ?= target/package-test
TAURI := ui/node_modules/.bin/tauri

TAURI_DRIVER_VERSION := 2.1.0
APP_BIN = $${CARGO_TARGET_DIR:-target}/debug/carebridge-app
KIOSK_CREDENTIALS ?=

# Property tests: bounded in CI, many more in `make soak` (SOAK_CASES), or raise by hand
# (PROPTEST_CASES=10000 make test).
PROPTEST_CASES ?= 64
export PROPTEST_CASES
SOAK_CASES ?= 2000

# $(call apt_install,PACKAGES): installs those of PACKAGES that dpkg does not report installed,
# with one `apt-get update` first, and only when something is missing. sudo only when not root.
define apt_install
missing=()
for p in $(1); do
	dpkg -s "$$p" 2>/dev/null | grep -qx 'Status: install ok installed' || missing+=("$$p")
done
if (( $${#missing[@]} )); then
	echo "installing missing packages: $${missing[*]}"
	sudo=()
	if [ "$$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || { echo "not root and no sudo: install $${missing[*]} by hand" >&2; exit 1; }
		sudo=(sudo)
	fi
	"$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
	"$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$${missing[@]}"
fi
endef

.PHONY: help deps bench-deps bench-packages cluster-packages build build-app run run-node run-kiosk run-exchange run-network run-cluster check doc test soak bench fmt clean ui schemathesis aiosmtpd fhir-validators package package-test

help:
	@echo 'make run         install missing packages, build, open the staff app (hosting a demo node on $(DEMO_LISTEN)) and a kiosk beside it'
	@echo 'make run-node    the demo node alone, on $(DEMO_LISTEN)'
	@echo 'make run-kiosk   a kiosk (fullscreen; KIOSK_CREDENTIALS=file signs it in with a demo'"'"'s device)'
	@echo 'make run-exchange  the demo hospital (127.0.0.1:8080) and an insurer (127.0.0.1:8081) peered, a staff app window on each (EXCHANGE_NO_APP=1: the nodes alone)'
	@echo 'make run-network  two hospitals (127.0.0.1:8080, :8082) and an insurer (:8081) peered, for consented access: a front desk, a doctor and a kiosk (NETWORK_NO_APP=1: the nodes alone)'
	@echo 'make run-cluster  the demo hospital on PostgreSQL: three node processes behind nginx on 127.0.0.1:8080, a front desk and a kiosk (CLUSTER_NO_APP=1: the cluster alone)'
	@echo 'make test        fmt + clippy checks, then every test (what CI runs)'
	@echo 'make soak        the property tests with PROPTEST_CASES=$(SOAK_CASES) (the client interleavings: an eighth of it); about 35 minutes'
	@echo 'make bench       fan-out benchmark of the node (SQLCipher, PostgreSQL, 3 processes behind nginx) against nginx+nchan and the seed, then the client core against plain SQLite; writes docs/performance.md'
	@echo 'make build       release build of carebridge-node'
	@echo 'make package     Debian packages of the app and the node (release) in $(PACKAGE_DIR)'
	@echo 'make package-test  the packages of the debug builds, installed into a fresh root and started'
	@echo 'make check       cargo fmt --check and clippy -D warnings (CHECK_DOCS=1 adds rustdoc)'
	@echo 'make deps        install missing Debian packages ($(DEB_PACKAGES))'
	@echo 'make bench-deps  deps + $(BENCH_DEB_PACKAGES) + npm ci for the seed peer'
	@echo 'make fmt | doc | clean'

deps:
	@extra=""
	command -v npm >/dev/null || extra="nodejs npm"
	$(call apt_install,$(DEB_PACKAGES) $$extra)
	command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs); rust-toolchain.toml pins the version" >&2; exit 1; }
	# The end-to-end tests drive the app through tauri-driver (WebKitWebDriver behind it).
	command -v tauri-driver >/dev/null || [ -x "$${CARGO_HOME:-$$HOME/.cargo}/bin/tauri-driver" ] \
		|| cargo install tauri-driver --locked --version '$(TAURI_DRIVER_VERSION)'

# Again only when the pins change.
$(SCHEMATHESIS_VENV)/.installed: $(SCHEMATHESIS_REQUIREMENTS)
	/usr/bin/python3 -m venv '$(SCHEMATHESIS_VENV)'
	'$(SCHEMATHESIS_VENV)/bin/pip' install --quiet --disable-pip-version-check --no-deps -r '$(SCHEMATHESIS_REQUIREMENTS)'
	'$(SCHEMATHESIS_VENV)/bin/pip' check
	touch '$@'

schemathesis: deps $(SCHEMATHESIS_VENV)/.installed

# Again only when the pins change.
$(SMTP_VENV)/.installed: $(SMTP_REQUIREMENTS)
	/usr/bin/python3 -m venv '$(SMTP_VENV)'
	'$(SMTP_VENV)/bin/pip' install --quiet --disable-pip-version-check --no-deps -r '$(SMTP_REQUIREMENTS)'
	'$(SMTP_VENV)/bin/pip' check
	touch '$@'

aiosmtpd: deps $(SMTP_VENV)/.installed

# The two offline FHIR R4 validators of crates/server/tests/fhir.rs (Medplum's, and HL7's JSON
# schema under Ajv), pinned by their lock file; installed again only when it changes.
FHIR_VALIDATORS := crates/server/tests/fhir
$(FHIR_VALIDATORS)/node_modules/.package-lock.json: $(FHIR_VALIDATORS)/package-lock.json
	(cd '$(FHIR_VALIDATORS)' && npm ci --no-audit --no-fund)
	touch '$@'

fhir-validators: deps $(FHIR_VALIDATORS)/node_modules/.package-lock.json

# The web UI: installed again only when the lock file changed; ui/dist is what the app embeds, so
# it must exist before anything compiles the app (clippy included). `npm install` with the lock
# rather than `npm ci`: the registry here leaves other platforms' optional packages out of the
# lock, which `npm ci` refuses.
ui/node_modules/.package-lock.json: ui/package-lock.json
	(cd ui && npm install --no-audit --no-fund)
	touch ui/node_modules/.package-lock.json

ui: ui/node_modules/.package-lock.json
	(cd ui && npm run build)

# One apt-get run for both lists; node + npm are taken from PATH when present (e.g. NodeSource).
bench-deps: bench-packages $(SEED_DIR)/node_modules/.package-lock.json

bench-packages:
	@extra=""
	command -v npm >/dev/null || extra="nodejs npm"
	$(call apt_install,$(DEB_PACKAGES) $(BENCH_DEB_PACKAGES) $$extra)
	command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs)" >&2; exit 1; }

# npm ci again only when the seed's lock file changed (npm ci writes node_modules/.package-lock.json).
$(SEED_DIR)/node_modules/.package-lock.json: $(SEED_DIR)/package-lock.json | bench-packages
	cd '$(SEED_DIR)' && npm ci --no-audit --no-fund
	touch node_modules/.package-lock.json

build:
	cargo build --release --locked -p carebridge-server --features demo --bin carebridge-node

build-app: ui
	cargo build --locked -p carebridge-app --bin carebridge-app

# The node without its demo: `-p carebridge-server` alone, so that no other package's
# dependency on it turns `demo` on.
package: deps ui
	cargo build --release --locked -p carebridge-server --bin carebridge-node
	$(TAURI) build --ci --no-bundle
	scripts/package/build.sh release '$(PACKAGE_DIR)'

package-test: deps ui
	cargo build --locked -p carebridge-server --bin carebridge-node
	cargo build --locked -p carebridge-app --bin carebridge-app
	scripts/package/build.sh debug '$(PACKAGE_TEST_DIR)'
	# As root: dpkg installs into the test's root with owners, and the node runs as its user.
	sudo=()
	[ "$$(id -u)" -eq 0 ] || sudo=(sudo)
	"$${sudo[@]}" scripts/package/test.sh '$(PACKAGE_TEST_DIR)'/carebridge-app_*.deb \
		'$(PACKAGE_TEST_DIR)'/carebridge-node_*.deb '$(PACKAGE_TEST_DIR)'

# The whole loop on one screen: the staff app hosts the demo node; the kiosk (windowed, beside
# it) signs in with the demo's kiosk device once the node has written its credentials.
run: deps build-app
	@case '$(DEMO_DIR)' in ''|/|.|..) echo "refusing to wipe DEMO_DIR='$(DEMO_DIR)'" >&2; exit 1 ;; esac
	[ -n "$${DISPLAY:-}$${WAYLAND_DISPLAY:-}" ] || { echo "make run opens two windows: it needs a desktop session (make run-node serves the demo node alone)" >&2; exit 1; }
	rm -rf -- '$(DEMO_DIR)'
	# Without an OS keychain the profiles' keys come from this passphrase (a throw-away demo).
	export CAREBRIDGE_PASSPHRASE="$${CAREBRIDGE_PASSPHRASE:-carebridge-demo}"
	# Imaging: an Orthanc of the demo's own (scripts/demo-pacs.sh), and the node pointed at it.
	pacs=
	if command -v Orthanc >/dev/null; then
		# Beside the demo's directory, which the app wants empty.
		rm -rf -- '$(DEMO_DIR)-pacs' && mkdir -p '$(DEMO_DIR)-pacs'
		scripts/demo-pacs.sh '$(DEMO_DIR)-pacs' 'http://$(DEMO_LISTEN)' > '$(DEMO_DIR)-pacs/orthanc.log' 2>&1 & pacs=$$!
		export CAREBRIDGE_IMAGING__ORTHANC_URL="http://127.0.0.1:$(PACS_HTTP_PORT)"
		export CAREBRIDGE_IMAGING__USERNAME="$(PACS_USER)" CAREBRIDGE_IMAGING__PASSWORD="$(PACS_PASSWORD)"
		export CAREBRIDGE_IMAGING__HINT_TOKEN="$(PACS_HINT_TOKEN)"
		export CAREBRIDGE_IMAGING__WORKLIST_DIR="$$(realpath -m '$(DEMO_DIR)-pacs/worklists')"
		export CAREBRIDGE_IMAGING__VIEWER_URL="http://127.0.0.1:$(PACS_HTTP_PORT)/app/explorer.html#study?uuid={pacs_id}"
		for _ in $$(seq 1 30); do
			echoscu -aec '$(PACS_AET)' 127.0.0.1 $(PACS_DICOM_PORT) 2>/dev/null && break
			kill -0 $$pacs 2>/dev/null || { echo "the demo's Orthanc stopped (is port $(PACS_HTTP_PORT) or $(PACS_DICOM_PORT) taken?): $(DEMO_DIR)-pacs/orthanc.log" >&2; exit 1; }
			sleep 0.5
		done
		echo "imaging: Orthanc on 127.0.0.1:$(PACS_HTTP_PORT) (DICOM $(PACS_DICOM_PORT)); send a study with scripts/demo-send-study.sh"
	fi
	"$(APP_BIN)" --demo '$(DEMO_DIR)' --listen '$(DEMO_LISTEN)' & staff=$$!
	"$(APP_BIN)" --kiosk --windowed --kiosk-credentials '$(DEMO_DIR)/demo-credentials.json' & kiosk=$$!
	trap 'kill $$staff $$kiosk $$pacs 2>/dev/null || true' EXIT INT TERM
	echo "staff app: sign in with the credentials in $(DEMO_DIR)/demo-credentials.json (e.g. dr.moreau / doctor-demo-pass)"
	wait -n $$staff $$kiosk || true

run-node: deps build
	@case '$(DEMO_DIR)' in ''|/|.|..) echo "refusing to wipe DEMO_DIR='$(DEMO_DIR)'" >&2; exit 1 ;; esac
	rm -rf -- '$(DEMO_DIR)'
	exec "$(NODE_BIN)" demo --listen '$(DEMO_LISTEN)' --data-dir '$(DEMO_DIR)'

# Two nodes peered as two organisations peer theirs, and a staff window on each: the doctor sends
# a report to the insurer's reviewer, the insurer's admin sends an update back (README).
run-exchange: deps build build-app
	@case '$(EXCHANGE_DIR)' in ''|/|.|..) echo "refusing to wipe EXCHANGE_DIR='$(EXCHANGE_DIR)'" >&2; exit 1 ;; esac
	[ "$${EXCHANGE_NO_APP:-0}" = 1 ] || [ -n "$${DISPLAY:-}$${WAYLAND_DISPLAY:-}" ] || { echo "make run-exchange opens two windows: it needs a desktop session (EXCHANGE_NO_APP=1 serves the two nodes alone)" >&2; exit 1; }
	NODE_BIN="$(NODE_BIN)" APP_BIN="$(APP_BIN)" EXCHANGE_DIR='$(EXCHANGE_DIR)' exec scripts/exchange-demo.sh

# Two hospitals and an insurer peered, for consented access across hospitals: St Mary's front
# desk, General's doctor and St Mary's kiosk, St Mary's mail in a sink of its own (README).
run-network: deps aiosmtpd build build-app
	@case '$(NETWORK_DIR)' in ''|/|.|..) echo "refusing to wipe NETWORK_DIR='$(NETWORK_DIR)'" >&2; exit 1 ;; esac
	[ "$${NETWORK_NO_APP:-0}" = 1 ] || [ -n "$${DISPLAY:-}$${WAYLAND_DISPLAY:-}" ] || { echo "make run-network opens three windows: it needs a desktop session (NETWORK_NO_APP=1 serves the nodes alone)" >&2; exit 1; }
	NODE_BIN="$(NODE_BIN)" APP_BIN="$(APP_BIN)" NETWORK_DIR='$(NETWORK_DIR)' exec scripts/network-demo.sh

# The demo hospital on PostgreSQL, three node processes behind nginx, the front desk and a
# kiosk through the load balancer (docs/postgresql.md).
run-cluster: deps cluster-packages build build-app
	@case '$(CLUSTER_DIR)' in ''|/|.|..) echo "refusing to wipe CLUSTER_DIR='$(CLUSTER_DIR)'" >&2; exit 1 ;; esac
	[ "$${CLUSTER_NO_APP:-0}" = 1 ] || [ -n "$${DISPLAY:-}$${WAYLAND_DISPLAY:-}" ] || { echo "make run-cluster opens two windows: it needs a desktop session (CLUSTER_NO_APP=1 serves the cluster alone)" >&2; exit 1; }
	NODE_BIN="$(NODE_BIN)" APP_BIN="$(APP_BIN)" CLUSTER_DIR='$(CLUSTER_DIR)' exec scripts/cluster-demo.sh

cluster-packages:
	$(call apt_install,$(CLUSTER_DEB_PACKAGES))

run-kiosk: deps build-app
	exec "$(APP_BIN)" --kiosk $(if $(KIOSK_CREDENTIALS),--kiosk-credentials '$(KIOSK_CREDENTIALS)')

check: ui
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	if [ "$${CHECK_DOCS:-0}" = 1 ]; then RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --locked; fi

doc:
	RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --locked

# package-test as a prerequisite, not a sub-make: deps and ui run once.
test: deps schemathesis aiosmtpd fhir-validators check package-test
	(cd ui && npm test)
	# Doctests first (nextest does not run them), so that the run closes on nextest's summary.
	cargo test --doc --workspace --locked
	# A throw-away PostgreSQL cluster for the store's second backend (its conformance suite, the
	# cluster's tests), stopped and removed when the run ends, whatever its outcome. The API's
	# suites then run again with their nodes on PostgreSQL (TEST_NODE_BACKEND).
	if command -v cargo-nextest >/dev/null; then
		scripts/with-postgres.sh sh -c 'cargo nextest run --workspace --locked && \
			TEST_NODE_BACKEND=postgres cargo nextest run --workspace --locked \
			-E "package(carebridge-server) & ($(foreach s,$(POSTGRES_API_SUITES),binary($(s)) |) none())"'
	else
		scripts/with-postgres.sh sh -c 'cargo test --workspace --locked && \
			TEST_NODE_BACKEND=postgres cargo test --workspace --locked $(foreach s,$(POSTGRES_API_SUITES),--test $(s))'
	fi
	# The tests rewrote the UI's TypeScript declarations from the Rust types: they must be
	# what is committed.
	if [ -n "$$(git status --porcelain -- ui/src/bindings)" ]; then
		git status --short -- ui/src/bindings
		echo "ui/src/bindings is stale: commit what the tests generated" >&2
		exit 1
	fi

# Every property test in the workspace with SOAK_CASES cases: the protocol's (its unit tests,
# all of them quick), the core's occupancy SQL against the protocol's predicate, and the
# client interleavings (three clients, restarts, node kills: real node processes, so an eighth
# of the count, 250 cases at the default). About 35 minutes on 2 cores once built, 33 of them
# the interleavings (measured 2026-12-06). A failure is saved, shrunk, beside its test
# (crates/core/tests/interleavings.proptest-regressions, crates/*/proptest-regressions/):
# commit it, and `make test` replays it from then on.
soak: deps
	if command -v cargo-nextest >/dev/null; then
		PROPTEST_CASES=$(SOAK_CASES) cargo nextest run --locked --profile soak \
			-p carebridge-protocol -p carebridge-core \
			-E 'package(carebridge-protocol) | test(/occupancy/) | binary(interleavings)'
	else
		PROPTEST_CASES=$(SOAK_CASES) cargo test --locked -p carebridge-protocol --lib
		PROPTEST_CASES=$(SOAK_CASES) cargo test --locked -p carebridge-core --lib occupancy
		PROPTEST_CASES=$(SOAK_CASES) cargo test --locked -p carebridge-core --test interleavings
	fi

bench: bench-deps build
	scripts/bench/node-bench.sh
	scripts/bench/core-bench.sh
	scripts/bench/fhir-bench.sh
	scripts/bench/app-bench.sh

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf target/demo target/bench target/ssefan target/exchange target/packages target/package-test
