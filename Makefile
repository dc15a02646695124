# Tessera's build, run and test entry points. `make run` and `make test`
# work on a fresh Debian 12 machine with Swift installed: they install the
# Debian and PyPI packages they need first (as root, or through sudo).

SWIFT ?= swift
CONFIG ?= release
PREFIX ?= /usr/local
DEB_PACKAGES = libuv1-dev libyaml-dev libsqlite3-dev libseccomp-dev libsystemd-dev pkg-config mandoc libcap2-bin tzdata prometheus tmux
PYTHON_PACKAGES = varlink
PLUGINS = shell noop checksum
BIN = $(shell $(SWIFT) build -c $(CONFIG) --show-bin-path 2>/dev/null)
DEV_PLUGIN_DIR = .tessera/plugins

# Where `make install` puts things (DESTDIR is prepended to every path, for
# staging). The configuration goes to /etc/tessera whatever the prefix: that
# is where tesserad looks by default.
DESTDIR ?=
SYSCONFDIR = /etc
BINDIR = $(PREFIX)/bin
SBINDIR = $(PREFIX)/sbin
LIBDIR = $(PREFIX)/lib
PKGLIBDIR = $(LIBDIR)/tessera
INCLUDEDIR = $(PREFIX)/include
DATADIR = $(PREFIX)/share
MANDIR = $(DATADIR)/man
UNITDIR = $(LIBDIR)/systemd/system
SYSUSERSDIR = $(LIBDIR)/sysusers.d
BASHCOMPDIR = $(DATADIR)/bash-completion/completions
ZSHCOMPDIR = $(DATADIR)/zsh/site-functions
FISHCOMPDIR = $(DATADIR)/fish/vendor_completions.d
INSTALL = install

# The C products are built with the C compiler, not through swiftc, so that
# they carry no Swift runtime: the worker zygote (every microtask is a fork
# of it, and a smaller process forks faster) and the C plugins (which the
# zygote maps). SwiftPM builds the Swift ones; these go beside them, into
# the same directory.
CC = cc
C_FLAGS = -std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
WORKER_SOURCES = $(wildcard Sources/tessera-worker/*.c) Sources/CTesseraWire/wire.c Sources/TesseraPluginABI/abi.c
WORKER_HEADERS = $(wildcard Sources/tessera-worker/*.h Sources/CTesseraWire/include/*.h Sources/TesseraPluginABI/include/tessera/*.h)
ABI_INCLUDE = -ISources/TesseraPluginABI/include
C_PLUGINS = shell noop checksum
# Every directory of Tests/Plugins is a C test plugin but swiftchecksum,
# the test suite's Swift plugin, which SwiftPM builds (libtessera-test-swift.so).
TEST_PLUGINS = $(filter-out swiftchecksum,$(notdir $(wildcard Tests/Plugins/*)))
C_PRODUCTS = $(BIN)/tessera-worker $(C_PLUGINS:%=$(BIN)/libtessera-%.so) $(TEST_PLUGINS:%=$(BIN)/libtessera-test-%.so)

MAN_PAGES = $(wildcard man/*.[0-9])
JOB_EXAMPLES = $(wildcard etc/tessera/jobs.d/*.yaml)
# Every file `make install` writes but the configuration (which it writes
# only where none is), as installed paths without DESTDIR.
INSTALLED_FILES = $(BINDIR)/tessera $(SBINDIR)/tesserad $(PKGLIBDIR)/tessera-worker \
	$(PLUGINS:%=$(PKGLIBDIR)/plugins/%.so) $(INCLUDEDIR)/tessera/plugin.h \
	$(foreach p,$(MAN_PAGES),$(MANDIR)/man$(subst .,,$(suffix $(p)))/$(notdir $(p))) \
	$(UNITDIR)/tesserad.service $(UNITDIR)/tesserad.socket $(SYSUSERSDIR)/tessera.conf \
	$(BASHCOMPDIR)/tessera $(ZSHCOMPDIR)/_tessera $(FISHCOMPDIR)/tessera.fish
# The directories that are Tessera's alone.
OWN_DIRS = $(PKGLIBDIR)/plugins $(PKGLIBDIR) $(INCLUDEDIR)/tessera $(SYSCONFDIR)/tessera/jobs.d $(SYSCONFDIR)/tessera
# The directories install needs, deepest last.
INSTALL_DIRS = $(BINDIR) $(SBINDIR) $(PKGLIBDIR)/plugins $(INCLUDEDIR)/tessera \
	$(sort $(foreach p,$(MAN_PAGES),$(MANDIR)/man$(subst .,,$(suffix $(p))))) \
	$(UNITDIR) $(SYSUSERSDIR) $(BASHCOMPDIR) $(ZSHCOMPDIR) $(FISHCOMPDIR) $(SYSCONFDIR)/tessera/jobs.d
# The directories install created (so that uninstall removes them, and only
# them, once empty), one a line, without DESTDIR. Not used by the daemon.
DIR_LIST = $(PKGLIBDIR)/installed-directories
# The shipped files name /usr/sbin, /usr/lib/tessera and /etc/tessera; this
# rewrites those paths for the prefix being installed to.
SUBST = sed -e 's|/usr/sbin/tesserad|$(SBINDIR)/tesserad|g' -e 's|/usr/lib/tessera|$(PKGLIBDIR)|g' \
	-e 's|/etc/tessera|$(SYSCONFDIR)/tessera|g'

.PHONY: all deps build c-products run test lint bench bench-compare clean install uninstall

all: build

# Installs what is missing, and only that.
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@python3 -c 'import varlink' 2>/dev/null || { echo "installing Python packages: $(PYTHON_PACKAGES)"; \
	  python3 -m pip install --quiet --disable-pip-version-check $(PYTHON_PACKAGES); }

# A release build links the Swift standard library statically, so that an
# installed tesserad and tessera run without the Swift toolchain.
STATIC_STDLIB = $(if $(filter release,$(CONFIG)),--static-swift-stdlib)

build: deps
	$(SWIFT) build -c $(CONFIG) $(STATIC_STDLIB)
	@$(MAKE) --no-print-directory c-products CONFIG=$(CONFIG)

c-products: $(C_PRODUCTS)

# -z now: every symbol is resolved once in the zygote, not again in each
# forked child on first call.
$(BIN)/tessera-worker: $(WORKER_SOURCES) $(WORKER_HEADERS)
	@mkdir -p $(@D)
	$(CC) $(C_FLAGS) -ISources/CTesseraWire/include $(ABI_INCLUDE) $(WORKER_SOURCES) -o $@ -ldl -lseccomp -Wl,-z,now

define c_plugin
$(BIN)/libtessera-$(1).so: $(wildcard $(2)/*.c $(2)/*.h) $(WORKER_HEADERS)
	@mkdir -p $$(@D)
	$$(CC) $$(C_FLAGS) -fPIC -shared $(ABI_INCLUDE) $(wildcard $(2)/*.c) -o $$@
endef
$(foreach p,$(C_PLUGINS),$(eval $(call c_plugin,$(p),Plugins/$(p))))
$(foreach p,$(TEST_PLUGINS),$(eval $(call c_plugin,test-$(p),Tests/Plugins/$(p))))

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
	@$(MAKE) --no-print-directory c-products CONFIG=debug
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

# The same no-op tasks through Tessera (default sandbox, sandbox: none,
# isolation: pooled), xargs -P, GNU parallel, Python multiprocessing, Dask,
# Celery over Redis and a C fork loop, in one table; see Benchmarks/compare.
# It installs the peers it needs (apt-get, pip) and builds the release
# configuration first, unless BIN names a directory of products already
# built.
bench-compare: CONFIG = release
bench-compare: $(if $(filter command line,$(origin BIN)),,build)
	Benchmarks/compare --bin $(BIN)

# `make install PREFIX=/usr DESTDIR=/tmp/stage`: bin/tessera, sbin/tesserad,
# lib/tessera/{tessera-worker,plugins/*.so}, include/tessera/plugin.h, the
# man pages, the systemd units, the sysusers.d file and the shell completions
# under PREFIX; /etc/tessera/tessera.yaml and jobs.d/ examples only where
# there is no such file yet (an operator's configuration is never
# overwritten). It builds the release configuration first, unless BIN names
# a directory of products already built (the test suite installs its debug
# build that way). Installed for real (no DESTDIR) as root, it also creates
# the tessera user and group with systemd-sysusers.
install: CONFIG = release
install: $(if $(filter command line,$(origin BIN)),,build)
	@set -e; bin='$(BIN)'; \
	for f in tessera tesserad tessera-worker $(PLUGINS:%=libtessera-%.so); do \
	  [ -f "$$bin/$$f" ] || { echo "install: $$bin/$$f is missing; build first, or give BIN=" >&2; exit 1; }; \
	done; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	if [ -n '$(DESTDIR)' ]; then mkdir -p '$(DESTDIR)'; fi; \
	for d in $(INSTALL_DIRS); do \
	  path=; rest=$${d#/}; \
	  while [ -n "$$rest" ]; do \
	    path="$$path/$${rest%%/*}"; case "$$rest" in */*) rest=$${rest#*/};; *) rest=;; esac; \
	    if [ ! -d '$(DESTDIR)'"$$path" ]; then mkdir -m 0755 '$(DESTDIR)'"$$path"; echo "$$path" >>"$$tmp/dirs"; fi; \
	  done; \
	done; \
	$(INSTALL) -m 0755 "$$bin/tessera" '$(DESTDIR)$(BINDIR)/tessera'; \
	$(INSTALL) -m 0755 "$$bin/tesserad" '$(DESTDIR)$(SBINDIR)/tesserad'; \
	$(INSTALL) -m 0755 "$$bin/tessera-worker" '$(DESTDIR)$(PKGLIBDIR)/tessera-worker'; \
	for p in $(PLUGINS); do $(INSTALL) -m 0755 "$$bin/libtessera-$$p.so" '$(DESTDIR)$(PKGLIBDIR)/plugins/'"$$p.so"; done; \
	$(INSTALL) -m 0644 Sources/TesseraPluginABI/include/tessera/plugin.h '$(DESTDIR)$(INCLUDEDIR)/tessera/plugin.h'; \
	for m in $(MAN_PAGES); do $(INSTALL) -m 0644 "$$m" '$(DESTDIR)$(MANDIR)'/man$${m##*.}/; done; \
	for u in tesserad.service tesserad.socket; do \
	  $(SUBST) etc/systemd/$$u >"$$tmp/$$u"; $(INSTALL) -m 0644 "$$tmp/$$u" '$(DESTDIR)$(UNITDIR)'/$$u; \
	done; \
	$(INSTALL) -m 0644 etc/sysusers.d/tessera.conf '$(DESTDIR)$(SYSUSERSDIR)/tessera.conf'; \
	for shell in bash zsh fish; do "$$bin/tessera" --generate-completion-script $$shell >"$$tmp/$$shell"; done; \
	$(INSTALL) -m 0644 "$$tmp/bash" '$(DESTDIR)$(BASHCOMPDIR)/tessera'; \
	$(INSTALL) -m 0644 "$$tmp/zsh" '$(DESTDIR)$(ZSHCOMPDIR)/_tessera'; \
	$(INSTALL) -m 0644 "$$tmp/fish" '$(DESTDIR)$(FISHCOMPDIR)/tessera.fish'; \
	conf='$(DESTDIR)$(SYSCONFDIR)/tessera'; \
	if [ -e "$$conf/tessera.yaml" ]; then echo "install: keeping $$conf/tessera.yaml"; \
	else $(SUBST) etc/tessera/tessera.yaml >"$$tmp/tessera.yaml"; $(INSTALL) -m 0644 "$$tmp/tessera.yaml" "$$conf/tessera.yaml"; fi; \
	for j in $(JOB_EXAMPLES); do \
	  if [ -e "$$conf/jobs.d/$${j##*/}" ]; then echo "install: keeping $$conf/jobs.d/$${j##*/}"; \
	  else $(INSTALL) -m 0644 "$$j" "$$conf/jobs.d/"; fi; \
	done; \
	list='$(DESTDIR)$(DIR_LIST)'; \
	touch "$$tmp/dirs"; if [ -f "$$list" ]; then cat "$$list" >>"$$tmp/dirs"; fi; \
	LC_ALL=C sort -u "$$tmp/dirs" >"$$tmp/sorted"; $(INSTALL) -m 0644 "$$tmp/sorted" "$$list"; \
	if [ -z '$(DESTDIR)' ] && [ "$$(id -u)" = 0 ] && command -v systemd-sysusers >/dev/null; then \
	  systemd-sysusers '$(SYSUSERSDIR)/tessera.conf'; \
	  if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	  echo "install: start it with: systemctl enable --now tesserad.socket tesserad.service"; \
	fi

# Removes what `make install` (same PREFIX and DESTDIR) put: its files, the
# configuration files that are still as shipped (an edited one stays, and so
# does any file an operator added), and the directories it created, when
# they are empty. The tessera user and group stay (files may belong to them),
# as does the state in /var/lib/tessera.
uninstall:
	@set -e; \
	for f in $(INSTALLED_FILES); do rm -f '$(DESTDIR)'"$$f"; done; \
	conf='$(DESTDIR)$(SYSCONFDIR)/tessera'; \
	if [ -f "$$conf/tessera.yaml" ]; then \
	  if $(SUBST) etc/tessera/tessera.yaml | cmp -s - "$$conf/tessera.yaml"; then rm -f "$$conf/tessera.yaml"; \
	  else echo "uninstall: keeping $$conf/tessera.yaml (changed)"; fi; \
	fi; \
	for j in $(JOB_EXAMPLES); do \
	  f="$$conf/jobs.d/$${j##*/}"; [ -f "$$f" ] || continue; \
	  if cmp -s "$$j" "$$f"; then rm -f "$$f"; else echo "uninstall: keeping $$f (changed)"; fi; \
	done; \
	list='$(DESTDIR)$(DIR_LIST)'; dirs=; \
	if [ -f "$$list" ]; then dirs=$$(cat "$$list"); rm -f "$$list"; fi; \
	for d in $$(printf '%s\n' $(OWN_DIRS) $$dirs | LC_ALL=C sort -ru); do \
	  if [ -d '$(DESTDIR)'"$$d" ]; then rmdir '$(DESTDIR)'"$$d" 2>/dev/null || true; fi; \
	done

clean:
	rm -rf .build .tessera
