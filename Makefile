# kplug_lab: `make run` starts the server with the example plugins; `make test` runs every check.
# Both create .venv and install everything on a fresh machine (only Python >= 3.11, git and make needed).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kplug-installed
WASM := kplug_lab/sandbox/guest/kplug.wasm
PORT ?= 8765
PYTEST_ARGS ?=

.PHONY: install guest run test lint typecheck unit notebooks bench reproducible clean

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

run: guest
	$(BIN)/kplug serve --plugins plugins --port $(PORT)

lint: install
	$(BIN)/ruff check kplug_lab tests bench

typecheck: install
	$(BIN)/mypy

unit: guest
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: guest lint typecheck unit

bench: guest
	mkdir -p bench/out
	$(BIN)/python bench/engine.py --json bench/out/engine.json

# Two clean builds of the guest must give the same bytes.
reproducible: install
	$(BIN)/python -m kplug_lab.sandbox.guest.build --force --out build/repro-a/kplug.wasm --sha256 > build/repro-a.sha
	$(BIN)/python -m kplug_lab.sandbox.guest.build --force --out build/repro-b/kplug.wasm --sha256 > build/repro-b.sha
	@cat build/repro-a.sha build/repro-b.sha
	cmp build/repro-a.sha build/repro-b.sha && echo "reproducible: identical sha256"

clean:
	rm -rf $(VENV) build dist $(WASM) $(WASM).stamp
