# kplug_lab: `make run` starts the server with the example plugins; `make test` runs every check.
# Both create .venv and install everything on a fresh machine (only Python >= 3.11, git and make needed).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kplug-installed
WASM := kplug_lab/sandbox/guest/kplug.wasm
PORT ?= 8765
PYTEST_ARGS ?=
# Every Jupyter handler must authenticate: a route missing its decorator fails instead of serving anonymously.
export JUPYTER_SERVER_ALLOW_UNAUTHENTICATED_ACCESS := false

.PHONY: install guest browser run serve test lint typecheck unit notebooks bench reproducible clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check "hatchling>=1.25" "editables>=0.5" "ziglang==0.17.1"
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-build-isolation -e ".[test]"
	@touch $(STAMP)

# The editable install builds the guest through the hatch hook; this re-checks it (a no-op when unchanged).
guest: install
	$(BIN)/python -m kplug_lab.sandbox.guest.build

# The SiYuan kernel the example plugins talk to (siyuan.client): the project's fake kernel on SIYUAN_PORT, started
# beside the server and stopped with it, unless SIYUAN_URL names a real one (then give SIYUAN_TOKEN too).
SIYUAN_PORT ?= 6816
SIYUAN_URL ?=
SIYUAN_TOKEN ?= kplug-dev-kernel
KERNEL_URL = $(if $(SIYUAN_URL),$(SIYUAN_URL),http://127.0.0.1:$(SIYUAN_PORT))
START_KERNEL = $(if $(SIYUAN_URL),:,$(BIN)/python -m kplug_lab.testing.fake_siyuan --port $(SIYUAN_PORT) \
	  --token $(SIYUAN_TOKEN) --workspace .kplug-data/fake-siyuan > .kplug-data/fake-siyuan.log 2>&1 & \
	  trap "kill $$! 2>/dev/null" EXIT INT TERM)

# The workbench: JupyterLab with the kplug_lab extension serving plugins/ (dev mode, so %%kplug eval works),
# opened on the getting-started notebook, with a (fake) SiYuan kernel for the plugins that reach one. JupyterLab
# prints the URL with its token; the extension prints the plugins it started and a curl line that calls one.
run: guest
	@mkdir -p .kplug-data; $(START_KERNEL); \
	KPLUG_SIYUAN_TOKEN=$(SIYUAN_TOKEN) $(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --port=$(PORT) \
	  $$([ "$$(id -u)" = 0 ] && echo --allow-root) --ServerApp.root_dir=. --KplugLabApp.plugins_dir=plugins \
	  --KplugLabApp.dev_mode=True --KplugLabApp.siyuan_url=$(KERNEL_URL) \
	  --LabApp.default_url=/lab/tree/notebooks/01-getting-started.ipynb

# The standalone server (no Jupyter): SiYuan's routes and the admin API on $(PORT), token printed.
serve: guest
	@mkdir -p .kplug-data; $(START_KERNEL); \
	KPLUG_SIYUAN_TOKEN=$(SIYUAN_TOKEN) $(BIN)/kplug serve --plugins plugins --port $(PORT) --siyuan-url $(KERNEL_URL)

lint: install
	$(BIN)/ruff check kplug_lab tests bench

typecheck: install
	$(BIN)/mypy

# The browser test drives Debian's Chromium and the JS client's unit test runs under node; install them once if
# this machine lacks them (CI runs as root).
browser:
	@command -v chromium >/dev/null 2>&1 && command -v node >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  echo "installing Debian's chromium and nodejs for the browser and JS client tests"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    $$(command -v chromium >/dev/null || echo chromium) $$(command -v node >/dev/null || echo nodejs) >/dev/null; }

unit: guest browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Every notebook runs top to bottom against a live server (started by notebooks/conftest.py) and its outputs
# are compared with the committed ones.
notebooks: guest
	$(BIN)/python -m pytest -p no:cacheprovider --nbval --nbval-current-env \
	  --nbval-sanitize-with notebooks/nbval_sanitize.cfg notebooks/

test: guest lint typecheck unit notebooks

# Each benchmark prints a table and writes bench/out/<name>.json; QUICK=1 runs the short versions.
BENCH_FLAGS := $(if $(QUICK),--quick,)
bench: guest
	mkdir -p bench/out
	$(BIN)/python bench/engine.py $(BENCH_FLAGS) --json bench/out/engine.json
	$(BIN)/python bench/host.py $(BENCH_FLAGS) --json bench/out/host.json
	$(BIN)/python bench/rpc.py $(BENCH_FLAGS) --json bench/out/rpc.json
	$(BIN)/python bench/scale.py $(BENCH_FLAGS) --json bench/out/scale.json
	$(BIN)/python bench/durability.py $(BENCH_FLAGS) --json bench/out/durability.json

# Two clean builds of the guest must give the same bytes.
reproducible: install
	$(BIN)/python -m kplug_lab.sandbox.guest.build --force --out build/repro-a/kplug.wasm --sha256 > build/repro-a.sha
	$(BIN)/python -m kplug_lab.sandbox.guest.build --force --out build/repro-b/kplug.wasm --sha256 > build/repro-b.sha
	@cat build/repro-a.sha build/repro-b.sha
	cmp build/repro-a.sha build/repro-b.sha && echo "reproducible: identical sha256"

clean:
	rm -rf $(VENV) build dist $(WASM) $(WASM).stamp
