"""Settings: the one reader of the environment, and what is decided from it.

``HF_HUB_OFFLINE`` is the Hugging Face hub's own variable; kinema reads it once, as the hub
library does, and passes the answer down (the catalog's checks, the engine host, ``kinema
pull``) instead of each of them looking at the environment.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub.constants import _is_true as hub_reads_true

from kinema.engines.config import EngineConfig
from kinema.engines.registry import EngineHost
from kinema.errors import EngineError
from kinema.profiles import load_catalog
from kinema.settings import Settings
from tests.support import make_settings

HUB_KERNEL_CATALOG = """
[engines.wan]
kind = "wan_ti2v"
fps = 24
weights = "/models/wan"
attention_backend = "flash_hub"
"""


@pytest.mark.parametrize(
    "value", ["1", "true", "TRUE", "Yes", "on", " 1", "", "0", "false", "no", "off", "maybe"]
)
def test_hf_hub_offline_is_read_as_the_hub_library_reads_it(
    value: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert Settings().hf_hub_offline is hub_reads_true(value)


def test_transformers_offline_counts_when_hf_hub_offline_is_unset(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert Settings().hf_hub_offline is True


def test_hf_hub_offline_defaults_to_online_and_has_no_kinema_variable(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert Settings().hf_hub_offline is False
    # One variable for kinema and the hub library, so the two never disagree.
    monkeypatch.setenv("KINEMA_HF_HUB_OFFLINE", "1")
    assert Settings().hf_hub_offline is False
    assert Settings(hf_hub_offline=True).hf_hub_offline is True


def test_an_offline_server_refuses_hub_kernels_when_its_catalog_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(HUB_KERNEL_CATALOG)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = Settings(data_dir=tmp_path, catalog_path=catalog)
    with pytest.raises(EngineError, match="downloads its kernel from the Hugging Face hub"):
        load_catalog(offline)
    # The settings decide, whatever the environment says: told online, the catalog loads.
    online = make_settings(tmp_path, catalog_path=catalog, hf_hub_offline=False)
    assert "wan" in load_catalog(online).engines


def test_the_engine_host_is_told_whether_it_is_offline(monkeypatch: pytest.MonkeyPatch):
    config = EngineConfig(
        "wan", "wan_ti2v", 24, {"weights": "/models/wan", "attention_backend": "flash_hub"}
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    EngineHost({"wan": config})  # not told: online
    with pytest.raises(EngineError, match="this server is offline"):
        EngineHost({"wan": config}, hub_offline=True)
