"""Server settings, read once at start-up from `PATCHBAY_*` variables (and `.env`).

Only the CLI and the app factory construct `Settings`; everything below them receives the
typed object or a value derived from it. Library code never reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from foundation.tiers import Tier
from routing.env_reference import parse_allowlist

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PATCHBAY_", env_file=".env", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    """Server processes sharing the port (`patchbay serve --workers`); one per core suits voice load."""
    replicas: int = Field(default=1, ge=1, le=1000)
    """`patchbay serve` processes serving this deployment behind a load balancer; above 1, start-up
    refuses settings the replicas would not share (SQLite, no Redis, per-process secrets)."""
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    """A connection's request line and headers must arrive within this; slower ones are closed."""
    http_keep_alive_seconds: int = Field(default=5, ge=1)
    """An idle kept-alive connection is closed after this."""
    http_max_connections: int | None = Field(default=10_000, ge=1)
    """Open connections and tasks per worker past which new requests get 503 (uvicorn's limit_concurrency)."""
    upstream_connections: int = Field(default=1000, ge=1, le=100_000)
    """Calls a worker has open to one upstream origin at once; past that, a call waits up to its
    connect timeout for one to end, then moves to the next candidate (no retry, no cooldown)."""
    upstream_client: Literal["h1", "aiohttp"] = "h1"
    """The HTTP client of upstream calls: Patchbay's own HTTP/1.1 client, or aiohttp's (about 0.1 ms
    more CPU per call; kept as a fallback). Both check every address they connect to."""
    org_cache_size: int = Field(default=10_000, ge=1)
    """Orgs a worker holds routing snapshots of at most; the least recently used is dropped (and reloaded on its next request)."""
    api_key_cache_size: int = Field(default=50_000, ge=1)
    """API keys a worker holds at most; the least recently used is dropped (and read again on its next use)."""
    org_prewarm: int = Field(default=1000, ge=0)
    """After start-up, load this many of the most recently used API keys and their orgs in the background (0: off)."""
    data_dir: Path = Path("./var")
    database_url: str | None = None
    """SQLAlchemy URL; default SQLite at DATA_DIR/patchbay.db. Plain `postgresql://` gets asyncpg."""
    redis_url: str | None = None
    cooldown_copy_seconds: float = Field(default=1.0, ge=0, le=60)
    """With Redis: how long a worker plans from its copy of an auth profile's state before reading it again; other replicas' cooldowns reach the copy at once by notice. 0: read Redis on every request."""
    log_level: LogLevel = "INFO"
    otel_endpoint: str | None = None
    """OpenTelemetry collector (OTLP over HTTP, `http://otel:4318`): spans of requests, routing and voice turns. Unset: no tracing, at no cost."""
    otel_sample_ratio: float = Field(default=1.0, ge=0, le=1)
    """With `otel_endpoint`: the fraction of traces recorded and exported (decided at each trace's root, from its id); 1: every request."""
    admin_token: SecretStr | None = None
    """The admin API's bearer token; unset: a token generated into DATA_DIR/admin.token (`patchbay admin token`)."""
    admin_api: bool = True
    """False turns the admin API (and so the web UI's sign-in) off: it answers 503 `admin_disabled`."""
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    """How long a web UI sign-in lasts before the person must sign in again."""
    session_cookie_secure: bool = True
    """Mark the session cookie Secure (sent over HTTPS only; browsers also send it to http://localhost)."""
    invite_hours: float = Field(default=72.0, gt=0, le=24 * 30)
    """How long an invite link stays valid."""
    allow_private_base_urls: bool = False
    api_docs: bool = False
    """Serve `/docs` (Swagger UI, loaded from a CDN) and `/openapi.json`; both unauthenticated."""
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Largest HTTP request body; a few routes keep caps of their own (server/body_limit.py)."""
    api_key_rate_limit: str = "600/60"
    """Requests per server API key: `N/SECONDS` (a token bucket of N refilled over SECONDS), or `off`."""
    auth_failure_limit: int = Field(default=10, ge=0, le=1_000_000)
    """Failed authentications from one address within the window that lock it out; 0 turns throttling off."""
    auth_failure_window_seconds: float = Field(default=60.0, gt=0, le=86_400)
    """The window failures are counted in, from an address's first failure."""
    auth_lockout_seconds: float = Field(default=300.0, gt=0, le=86_400)
    """How long a locked-out address is refused (429 with `retry-after`)."""
    allow_plain_http_base_urls: bool = False
    """Allow `http://` base URLs to public hosts (private ones follow ALLOW_PRIVATE_BASE_URLS)."""
    env_reference_allow: str = ""
    """Environment variables a connection may name as its key (`OPENAI_API_KEY,ANTHROPIC_API_KEY`);
    empty: none. `PATCHBAY_*` names are refused at start-up."""
    master_key: SecretStr | None = None
    """Vault master keys: `v2:<base64>,v1:<base64>` (first is current) or one bare base64 key."""
    master_key_file: Path | None = None
    voice_max_frame_bytes: int = Field(default=1_048_576, ge=4096)
    """Largest WebSocket text message a realtime session accepts; larger ones get an error event."""
    voice_max_buffer_seconds: float = Field(default=60.0, gt=0)
    """Input audio held for one turn (manual mode refuses more; server VAD ends the turn)."""
    voice_max_session_seconds: float = Field(default=3600.0, gt=0)
    voice_drain_seconds: float = Field(default=60.0, ge=0, le=86_400)
    """On SIGTERM, how long an open realtime session (browser or phone) goes on before it is
    closed (1012, service restart); the worker stops as soon as the last one ends. 0: at once."""
    voice_max_sessions_per_key: int = Field(default=50, ge=1)
    """Concurrent realtime sessions per server API key: across processes with REDIS_URL, else per process."""
    voice_silence_ms: int = Field(default=500, ge=0, le=10_000)
    """Default end-of-turn silence for server VAD; clients may change it per session."""
    voice_silence_after_sentence_ms: int = Field(default=300, ge=0, le=10_000)
    """End-of-turn silence once the partial transcript is a complete sentence (at most VOICE_SILENCE_MS)."""
    voice_silence_after_continuation_ms: int = Field(default=1000, ge=0, le=10_000)
    """End-of-turn silence once the partial transcript trails off ("... and", a comma; at least VOICE_SILENCE_MS)."""
    voice_partial_transcripts: bool = True
    """Decode at the caller's pauses with the internal STT, so the transcript is ready at the turn's end; off: one decode per turn."""
    voice_speculative_reply: bool = True
    """Start the reply on a pause's complete-sentence partial transcript, held until the turn ends (needs partial transcripts)."""
    voice_token_ttl_seconds: int = Field(default=60, ge=5, le=3600)
    voice_token_secret: SecretStr | None = None
    """Signs short-lived realtime tokens; random per process when unset (set it with several replicas)."""
    voice_whisper_model_dir: Path | None = None
    """The internal Whisper STT model; default DATA_DIR/models/whisper-base. Without it pocketsphinx serves."""
    voice_espeak_voice: str = "en-us"
    voice_tts_streaming: bool = True
    """Speak a reply over one streamed TTS connection (ElevenLabs `stream-input`) when the TTS
    chain's first engine can; false: one TTS request per sentence, as before."""
    forwarded_allow_ips: str | None = None
    """Proxies trusted for `X-Forwarded-Proto` / `X-Forwarded-For` (comma-separated addresses or
    networks, or `*`); unset, those headers are ignored. See operations.md, "Behind a proxy"."""
    public_url: str | None = Field(default=None, pattern=r"^https?://[^/?#]+/?$")
    """This server as callers reach it (`https://voice.example.com`), for URLs it hands out such as
    the Twilio media stream's; when unset, taken from each request's scheme and Host."""
    default_tier: Tier = Tier.ENTERPRISE
    """The tier of an org created without one (`org create`, the admin API): `enterprise` gates nothing."""
    billing_hold_ttl_seconds: int = Field(default=900, ge=10, le=7 * 24 * 3600)
    """A credits hold not settled or released by then (its process crashed) is released by the sweeper."""
    request_log_retention_days: int = Field(default=30, ge=0, le=3650)
    """Days the request log keeps each org's requests; 0 keeps nothing (the log is off)."""
    health_probe_interval: float = Field(default=0, ge=0, le=7 * 24 * 3600)
    """Seconds between rounds of the scheduled health probe (test_auth and list_models per
    connection, no generation); 0 turns it off (docs/conformance.md#scheduled-health)."""
    health_probe_platform: bool = False
    """Also probe the operator's platform connections on that schedule."""
    twilio_auth_token: SecretStr | None = None
    """The Twilio account's Auth Token: when set, the Twilio webhook answers only requests whose
    `X-Twilio-Signature` it verifies (computed over PUBLIC_URL + path + query)."""
    twilio_call_checkpoints: bool = True
    """Keep each phone call's conversation in its handover row after every reply, so a call whose
    worker dies goes on after Twilio's redirect (docs/voice.md#a-worker-that-dies)."""

    stripe_secret_key: SecretStr | None = None
    """The Stripe account's secret key (`sk_live_...`, `sk_test_...`); unset: purchases are off and
    billing works from `patchbay credits grant` alone (docs/billing.md, "Stripe")."""
    stripe_webhook_secret: SecretStr | None = None
    """The signing secret of the `/v1/stripe/webhook` endpoint (`whsec_...`); unset, the webhook answers 503."""
    stripe_api_base: str | None = Field(default=None, pattern=r"^https?://[^/?#]+/?$")
    """For testing only: where the Stripe client sends its API calls instead of https://api.stripe.com."""
    stripe_tier_prices: str = ""
    """Subscription price ids per tier: `starter=price_A,pro=price_B+price_BYOK_FEE`; the first id of a
    tier names it in a subscription, any more are added to its checkout (a flat BYOK platform fee).
    Fills the tier table's `stripe_prices` for the tiers it names (`server.payments.client.commercial_table`)."""
    stripe_meter_event_name: str = Field(default="byok_surcharge", min_length=1, max_length=100)
    """The Stripe billing meter the BYOK surcharge is reported to (its `event_name`)."""

    @field_validator("stripe_tier_prices")
    @classmethod
    def _tier_prices(cls, v: str) -> str:
        parse_tier_prices(v)
        return v

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @field_validator("api_key_rate_limit")
    @classmethod
    def _rate(cls, v: str) -> str:
        parse_rate_limit(v)
        return v

    @field_validator("env_reference_allow")
    @classmethod
    def _env_references(cls, v: str) -> str:
        parse_allowlist(v)
        return v

    @property
    def env_references(self) -> frozenset[str]:
        """The names connections may reference; never a `PATCHBAY_*` one."""
        return parse_allowlist(self.env_reference_allow)

    @property
    def rate_limit(self) -> tuple[int, float] | None:
        """(requests, per_seconds), or None when limiting is off."""
        return parse_rate_limit(self.api_key_rate_limit)

    @property
    def resolved_database_url(self) -> str:
        url = self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'patchbay.db').resolve()}"
        return normalize_database_url(url)


def parse_tier_prices(text: str) -> dict[Tier, tuple[str, ...]]:
    """`starter=price_A,pro=price_B+price_C` -> {Tier.STARTER: ("price_A",), Tier.PRO: ("price_B", "price_C")}."""
    out: dict[Tier, tuple[str, ...]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, ids = part.partition("=")
        prices = tuple(filter(None, (i.strip() for i in ids.split("+"))))
        try:
            tier = Tier(name.strip())
        except ValueError:
            raise ValueError(
                f"unknown tier {name.strip()!r} in {part!r}; use TIER=PRICE_ID[+PRICE_ID...]"
            ) from None
        if not sep or not prices or tier in out:
            raise ValueError(f"use TIER=PRICE_ID[+PRICE_ID...] once per tier, comma-separated (got {part!r})")
        out[tier] = prices
    primaries = [p[0] for p in out.values()]
    if len(set(primaries)) != len(primaries):
        raise ValueError("each tier needs its own first price id: it is how a subscription names its tier")
    return out


def parse_rate_limit(text: str) -> tuple[int, float] | None:
    text = text.strip().lower()
    if text in ("off", "none", "0"):
        return None
    count, sep, seconds = text.partition("/")
    try:
        requests, per = int(count), float(seconds) if sep else 60.0
    except ValueError:
        raise ValueError("use N/SECONDS, e.g. 600/60, or off") from None
    if requests < 1 or per <= 0:
        raise ValueError("use N/SECONDS with N >= 1 and SECONDS > 0, or off")
    return requests, per


def normalize_database_url(url: str) -> str:
    """Accept the URLs people paste (`postgres://`, `postgresql://`, `sqlite://`) and pick async drivers."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url
