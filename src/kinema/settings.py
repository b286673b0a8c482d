"""Settings, read from ``KINEMA_*`` environment variables (or passed in by tests).

Every object in kinema is built from one ``Settings`` value; nothing reads the
environment anywhere else. Two readings are not ``KINEMA_*`` variables: ``provider_keys``
(upstream providers' API keys, in the variables the catalog names) and ``hf_hub_offline``
(the Hugging Face hub's own ``HF_HUB_OFFLINE``, read as the hub library reads it, so that
kinema and the library agree on whether this machine may download).
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "kinema"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KINEMA_", extra="ignore")

    # --- where state lives ---
    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None  # default: SQLite file in data_dir
    storage_dir: Path | None = None  # default: data_dir / "files"
    # Where videos live: unset = storage_dir; "s3://bucket/prefix?endpoint_url=...&region=..."
    # for an S3-compatible store shared by every machine (credentials: the AWS_* variables).
    storage_url: str | None = None
    catalog_path: Path | None = None  # default: the catalog shipped with kinema
    # "gpu": the Veo ids served by the best open model whose weights are in models_dir and
    # that fits the GPU (docs/gpu.md, "The GPU profile"); the engines come from catalog_path
    # or, when unset, from the shipped catalog.gpu.toml.
    catalog_profile: Literal["default", "gpu"] = "default"
    models_dir: Path | None = None  # where `kinema pull` puts weights; default data_dir/models
    # The GPU size the gpu profile chooses engines for and the memory planner plans every
    # diffusers engine for (over an engine's own gpu_memory_gb); default: what torch sees.
    gpu_memory_gb: float | None = None
    # HF_HUB_OFFLINE (else TRANSFORMERS_OFFLINE), without a KINEMA_ prefix: the variables
    # the hub library itself reads. Hub downloads are off, so engines needing one (a
    # "_hub" attention kernel) are refused when the catalog loads, and `kinema pull` refuses.
    hf_hub_offline: bool = Field(
        default=False,
        validation_alias=AliasChoices("hf_hub_offline", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"),
    )

    # --- HTTP ---
    host: str = "127.0.0.1"
    port: int = 8000
    # Links handed to clients start with this; default: the base URL of the request that
    # created the job (kept with the job, so no other request can change its links).
    public_base_url: str | None = None
    # Host names this server answers for ("api.example.com", "*.example.com"); a request
    # naming another Host gets 400. Empty: any host.
    trusted_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Addresses (or networks, "10.0.0.0/8") of reverse proxies whose X-Forwarded-Proto,
    # -Host, -For and -Prefix headers are honoured; from anyone else they are ignored.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = 20 * 1024 * 1024  # larger request bodies are answered 413
    header_timeout_s: float = 10.0  # a connection must finish its request headers in this
    # A request's body must have arrived this long after its headers; a slower one gets 408.
    body_timeout_s: float = 120.0
    keep_alive_s: float = 5.0  # an idle keep-alive connection is closed after this
    # uvicorn's HTTP/1.1 parser: "httptools" (C), "h11" (pure Python), or "auto" (httptools
    # when installed). The header and body deadlines hold under both.
    http_protocol: Literal["auto", "httptools", "h11"] = "auto"
    auth_disabled: bool = False  # development only: every request is the "anonymous" owner
    key_cache_s: float = 2.0  # how long a verified API key is trusted without a re-check
    rate_limit_per_minute: int = 0  # requests per key per minute, per API process; 0 = no limit
    # The longest a create that asks for the finished job (the Interactions API's
    # ``background: false``) holds its request; a job still unfinished then is answered as
    # it stands and carries on (poll it).
    sync_wait_s: float = 300.0

    # --- operations ---
    log_format: Literal["text", "json"] = "text"  # json: one object per line, with ids
    metrics_token: str | None = None  # when set, /metrics wants "Authorization: Bearer <it>"
    metrics_port: int = 0  # >0: also serve /metrics on this port (for ``kinema worker``)

    # --- dispatch ---
    # "embedded": worker threads in ``kinema serve`` claim from the jobs table (SQLite or
    # PostgreSQL). "procrastinate": jobs go through procrastinate queues on the same
    # PostgreSQL, one queue per model, for ``kinema worker`` processes on any machine.
    dispatch: Literal["embedded", "procrastinate"] = "embedded"
    transient_retry_base_s: float = 2.0  # first delay before retrying a transient failure
    # How long a running job waits for an unavailable database, bucket or full disk to come
    # back (retrying with backoff, spending no attempt) before it fails saying which.
    outage_wait_s: float = 300.0

    # --- embedded worker pool ---
    workers: int = 1  # jobs generated at once inside ``kinema serve``; 0 = API only
    # GPUs this process's diffusers engines use, e.g. "0,1,2,3": with several, each job runs
    # across all of them (context parallelism); empty: what each catalog entry says.
    gpus: str = ""
    lease_s: float = 30.0  # a running job's lease; a dead worker's job is re-queued after it
    heartbeat_s: float = 5.0  # how often a worker renews its leases
    poll_s: float = 0.5  # how often an idle worker looks for queued jobs
    max_attempts: int = 3  # a job that lost its worker this many times fails
    progress_interval_s: float = 0.5  # minimum time between progress writes of one job
    off_peak_max_age_s: float = 48 * 3600  # off-peak jobs unfinished this long are cancelled

    # --- downloads ---
    url_ttl_s: int = 24 * 3600
    retention_s: float = 7 * 24 * 3600  # finished videos are removed (job: expired); 0 keeps
    signing_secret: str | None = None  # default: a random secret kept in data_dir

    # --- webhooks ---
    webhook_retry_base_s: float = 5.0  # first retry delay; doubles per attempt, capped at 1 h
    webhook_max_age_s: float = 24 * 3600  # retries stop this long after the event
    webhook_poll_s: float = 1.0  # how often the deliverer looks for due events
    webhook_timeout_s: float = 5.0  # one delivery attempt; a slower receiver is retried later
    webhook_concurrency: int = 8  # deliveries in flight at once, per process
    webhook_per_endpoint: int = 2  # of those, at most this many to one receiver (host:port)

    # --- image intake ---
    fetch_allow_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    fetch_timeout_s: float = 15.0
    fetch_max_redirects: int = 5
    max_image_bytes: int = 50 * 1024 * 1024
    max_video_bytes: int = 200 * 1024 * 1024  # a source video sent inline for an extension
    # Pixels one job may make: width x height x frames x videos, an extension's source
    # included (four 8-second 4k videos at 24 fps are 6.4e9); more is refused with a 400.
    max_job_pixels: int = 8 * 10**9

    @field_validator("hf_hub_offline", mode="before")
    @classmethod
    def _hub_truth(cls, value: object) -> object:
        # As huggingface_hub reads it: these words are true, anything else is false.
        if isinstance(value, str):
            return value.upper() in {"1", "ON", "YES", "TRUE"}
        return value

    @field_validator("fetch_allow_hosts", "trusted_hosts", "trusted_proxies", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [h.strip().lower() for h in value.split(",") if h.strip()]
        return value

    def provider_keys(self) -> Mapping[str, str]:
        """Upstream providers' API keys by the environment variable each engine names
        (``api_key_env``): read when an engine sets up, never copied into settings, logs
        or the catalog."""
        return os.environ

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'kinema.db'}"

    @property
    def resolved_storage_dir(self) -> Path:
        return self.storage_dir or self.data_dir / "files"

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    def resolved_signing_secret(self) -> bytes:
        """The HMAC key for download links: the setting, or a random one kept on disk."""
        if self.signing_secret:
            return self.signing_secret.encode()
        return self._kept_secret("signing.key", lambda: secrets.token_urlsafe(32)).encode()

    def anonymous_webhook_secret(self) -> str:
        """The webhook secret used when auth is disabled (there is no key to hold one)."""
        return self._kept_secret(
            "webhook.key", lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        )

    def _kept_secret(self, name: str, make: Callable[[], str]) -> str:
        path = self.data_dir / name
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(make())
            tmp.chmod(0o600)
            os.replace(tmp, path)
        return path.read_text().strip()
