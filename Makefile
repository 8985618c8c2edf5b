# The README's two commands: `make demo` and `make test`. Each sets itself up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
OUT    ?= demo-output
# Test workers (pytest-xdist): one per core; modules stay whole on one worker (module fixtures).
JOBS   ?= auto
# Compiled translation catalogues (not committed): rebuilt whenever their .po changes.
MO     := $(patsubst %.po,%.mo,$(wildcard src/reluth/locale/*/LC_MESSAGES/messages.po))

.PHONY: demo test lint typecheck unit install clean sysdeps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

$(MO): %.mo: %.po | $(STAMP)
	$(BIN)/python tools/i18n.py compile

# WeasyPrint (casebook and report PDFs) needs Pango from Debian: installed when missing and
# this is root with apt-get (as on CI), otherwise named.
sysdeps:
	@ldconfig -p 2>/dev/null | grep -q 'libpangoft2-1.0.so.0' || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Pango for WeasyPrint (PDF casebooks and reports)"; \
	    apt-get update -qq && apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 >/dev/null; \
	  else \
	    echo "note: PDFs need Pango: sudo apt-get install libpango-1.0-0 libpangoft2-1.0-0"; \
	  fi; }

install: $(STAMP) $(MO)

demo: $(STAMP) $(MO) sysdeps
	$(BIN)/reluth demo --out $(OUT)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools
	$(BIN)/lint-imports --no-cache
	$(BIN)/python tools/i18n.py check

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(MO) sysdeps
	$(BIN)/python -m pytest -n $(JOBS) --dist loadscope $(PYTEST_ARGS)

test: lint typecheck unit

clean:
	rm -rf $(VENV) reluth-data demo-output .pytest_cache .mypy_cache .ruff_cache
