# doctagger: two set-up commands.
#   make demo   create .venv/, install doctagger into it, run the main job on samples/
#   make test   install the test tools too, run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DT     := $(VENV)/bin/doctagger
INDEX  ?= .doctagger

.PHONY: demo test install docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch first, so that an existing build is kept and no CUDA build is pulled on a CPU machine.
$(VENV)/.torch: | $(PY)
	sh scripts/install-torch.sh $(PY)
	touch $@

# doctagger itself (with its first-party task types) and the example third-party plugin.
$(VENV)/.installed: pyproject.toml plugins/doctagger_keywords/pyproject.toml $(VENV)/.torch
	$(PY) -m pip install -q -e '.[test]' -e plugins/doctagger_keywords
	touch $@

install: $(VENV)/.installed

demo: install
	DOCTAGGER_INDEX=$(INDEX) sh scripts/demo.sh $(DT)

test: install
	$(PY) -m pytest -q

docs: install
	$(PY) -m cogapp -r docs/cli.md

clean:
	rm -rf $(VENV) $(INDEX) build *.egg-info
