"""``import marlkit.llm`` stays light: the backends' heavy dependencies load only when a backend is built."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.llm


def test_public_names_resolve_without_importing_transformers_or_httpx():
    code = (
        "import sys, marlkit.llm as L\n"
        "names = [L.HFPolicy, L.OpenAIChatPolicy, L.ChatServer, L.Sampling, L.TokenBucket, L.APIError]\n"
        "print(sorted(m for m in ('transformers', 'httpx', 'tokenizers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_lazy_name_exists():
    import marlkit.llm as llm

    for name in llm.__all__:
        assert getattr(llm, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        llm.nope  # noqa: B018
