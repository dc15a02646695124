# Tessera's build, run and test entry points. `make run` and `make test`
# work on a fresh Debian 12 machine with Swift installed: they install the
# Debian and PyPI packages they need first (as root, or through sudo).

SWIFT ?= swift
CONFIG ?= release
PREFIX ?= /usr/local
DEB_PACKAGES = libuv1-dev libyaml-dev libsqlite3-dev libseccomp-dev libsystemd-dev pkg-config mandoc libcap2-bin
PYTHON_PACKAGES = varlink
PLUGINS = shell noop checksum
BIN = $(shell $(SWIFT) build -c $(CONFIG) --show-bin-path 2>/dev/null)
DEV_PLUGIN_DIR = .tessera/plugins

.PHONY: all deps build run test lint bench clean

all: build

# Installs what is missing, and only that.
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null; \
	fi
	@python3 -c 'import varlink' 2>/dev/null || { echo "installing Python packages: $(PYTHON_PACKAGES)"; \
	  python3 -m pip install --quiet --disable-pip-version-check $(PYTHON_PACKAGES); }

build: deps
	$(SWIFT) build -c $(CONFIG)

# The daemon in the foreground on etc/tessera/dev.yaml: socket and state in
# ./.tessera/, the bundled plugins, the example jobs.
run: build
	@mkdir -p $(DEV_PLUGIN_DIR)
	@for p in $(PLUGINS); do install -m 0755 $(BIN)/libtessera-$$p.so $(DEV_PLUGIN_DIR)/$$p.so; done
	@echo "tesserad: in another terminal:  export TESSERA_SOCKET=$$PWD/.tessera/tessera.sock PATH=$(BIN):\$$PATH"
	$(BIN)/tesserad --config etc/tessera/dev.yaml

# The whole suite: unit tests, the real daemon on a real socket with real
# plugins, and an independent varlink client (Python).
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --parallel --num-workers 2
	@$(MAKE) --no-print-directory lint

# Layout of Swift code (swift-format, settings in .ci/swift-format.json) and
# the man pages (mandoc -Tlint).
lint:
	$(SWIFT) format lint --strict -r --configuration .ci/swift-format.json Package.swift Sources Tests Plugins
	mandoc -Tlint -W warning man/*.[0-9]

# Throughput against xargs -P; see Benchmarks/README.md.
bench: CONFIG = release
bench: build
	@mkdir -p $(DEV_PLUGIN_DIR)
	Benchmarks/throughput --bin $(BIN)

clean:
	rm -rf .build .tessera
