"""One contract for the record stores and their unit of work, run against SQLite and
the in-memory fake.

Every test runs twice: on a real SQLite file in `tmp_path` and on
`InMemoryUnitOfWork`. The core's unit tests trust the fake; this suite is
what earns that trust.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from tests.fakes.memory import InMemoryUnitOfWork

from stylebot.bot.core.errors import (
    DuplicateRecord,
    DuplicateStyleName,
    RecordNotFound,
    RepositoryError,
)
from stylebot.bot.core.model import (
    JobStatus,
    NewConsent,
    NewJob,
    NewStyle,
    Output,
    Requester,
    Style,
    StyleStatus,
    Upload,
    User,
    Visibility,
)
from stylebot.bot.core.stores import (
    ConsentStore,
    JobStore,
    OutputStore,
    StyleStore,
    UnitOfWork,
    UploadStore,
    UserStore,
)
from stylebot.storage.unit_of_work import SqliteUnitOfWork

Repo = SqliteUnitOfWork | InMemoryUnitOfWork

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KEY_A = "a" * 64
KEY_B = "b" * 64
KEY_C = "c" * 64


class Clock:
    """A clock the test moves by hand, so stored times are predictable."""

    def __init__(self) -> None:
        self.time = T0

    def now(self) -> datetime:
        return self.time

    def advance(self, seconds: float = 1) -> datetime:
        self.time += timedelta(seconds=seconds)
        return self.time


class Backend:
    """Opens the repository under test; `reopen` simulates a process restart."""

    def __init__(self, kind: str, path: Path, clock: Clock) -> None:
        self.kind = kind
        self.path = path
        self.clock = clock
        self._memory: InMemoryUnitOfWork | None = None
        self._opened: list[Repo] = []

    async def open(self) -> Repo:
        if self.kind == "memory":
            if self._memory is None:
                self._memory = InMemoryUnitOfWork(now=self.clock.now)
            return self._memory
        repo = await SqliteUnitOfWork.open(self.path, now=self.clock.now)
        self._opened.append(repo)
        return repo

    async def reopen(self, repo: Repo) -> Repo:
        if self.kind == "sqlite":
            await repo.close()
            self._opened.remove(repo)
        return await self.open()

    async def close(self) -> None:
        for repo in self._opened:
            await repo.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "memory"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> AsyncIterator[Backend]:
    backend = Backend(request.param, tmp_path / "data" / "stylebot.sqlite", clock)
    yield backend
    await backend.close()


@pytest.fixture
async def repo(backend: Backend) -> Repo:
    return await backend.open()


def requester(user: str = "u1", server: str | None = "guild1") -> Requester:
    return Requester(
        platform="discord",
        user_id=user,
        display_name=f"name-{user}",
        chat_id=f"chat-{user}",
        server_id=server,
    )


async def user(repo: Repo, name: str = "alice") -> User:
    return await repo.users.get_or_create_user("discord", f"id-{name}", name)


async def uploads(repo: Repo, owner: User, *keys: str) -> list[Upload]:
    return [
        await repo.uploads.add_upload(owner.id, key, f"{key[:4]}.png", 512, 512) for key in keys
    ]


async def style_for(repo: Repo, owner: User, name: str, keys: tuple[str, ...] = (KEY_A,)) -> Style:
    """A style through the same steps the core takes: uploads, consent, add_style."""
    ups = await uploads(repo, owner, *keys)
    consent = await repo.consents.add_consent(
        NewConsent(owner.id, "cc-by-4.0", "v1", True, keys, T0)
    )
    return await repo.styles.add_style(
        NewStyle(
            owner.id, name, f"<{name}>", consent.id, "tiny", {"rank": 4}, [u.id for u in ups], T0
        )
    )


def output(output_id: str, job_id: str, owner: User, style_id: int | None = None) -> Output:
    return Output(
        id=output_id,
        job_id=job_id,
        user_id=owner.id,
        prompt="a cat",
        negative_prompt="blurry",
        seed=1234,
        steps=20,
        guidance=7.5,
        width=512,
        height=512,
        created_at=T0,
        style_id=style_id,
    )


# -- the port itself ------------------------------------------------------------


STORE_PORTS: dict[str, type] = {
    "users": UserStore,
    "uploads": UploadStore,
    "consents": ConsentStore,
    "styles": StyleStore,
    "jobs": JobStore,
    "outputs": OutputStore,
}


def assert_same_methods(port: type, implementation: type) -> None:
    methods = {
        name
        for name, member in vars(port).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }
    assert methods, port
    for name in methods:
        expected = inspect.signature(getattr(port, name))
        ours = inspect.signature(getattr(implementation, name))
        assert list(ours.parameters.values()) == list(expected.parameters.values()), name
        if name != "transaction":  # an @asynccontextmanager generator: checked by use below
            assert ours.return_annotation == expected.return_annotation, name
        assert inspect.iscoroutinefunction(getattr(implementation, name)) == (
            inspect.iscoroutinefunction(getattr(port, name))
        ), name


def test_each_store_implements_its_port_with_the_same_signatures(repo: Repo) -> None:
    for attribute, port in STORE_PORTS.items():
        assert_same_methods(port, type(getattr(repo, attribute)))
    assert_same_methods(UnitOfWork, type(repo))


# -- users --------------------------------------------------------------------


async def test_get_or_create_user_creates_once_and_keeps_the_name_current(
    repo: Repo, clock: Clock
) -> None:
    first = await repo.users.get_or_create_user("discord", "42", "Alice")
    clock.advance()
    again = await repo.users.get_or_create_user("discord", "42", "Alice B.")
    other_platform = await repo.users.get_or_create_user("telegram", "42", "Alice")

    assert again.id == first.id
    assert again.display_name == "Alice B."
    assert again.created_at == first.created_at == T0
    assert other_platform.id != first.id
    assert await repo.users.get_user(first.id) == again
    assert await repo.users.get_user(9999) is None


async def test_concurrent_get_or_create_user_makes_one_user(repo: Repo) -> None:
    users = await asyncio.gather(
        *(repo.users.get_or_create_user("discord", "same", "Sam") for _ in range(30))
    )
    assert {u.id for u in users} == {users[0].id}


# -- uploads ------------------------------------------------------------------


async def test_uploads_are_pending_oldest_first(repo: Repo, clock: Clock) -> None:
    alice, bob = await user(repo, "alice"), await user(repo, "bob")
    first = await repo.uploads.add_upload(alice.id, KEY_A, "a.png", 640, 480)
    clock.advance()
    second = await repo.uploads.add_upload(alice.id, KEY_B, "b.png", 512, 768)
    await repo.uploads.add_upload(bob.id, KEY_C, "c.png", 512, 512)

    assert first.style_id is None
    assert (first.blob_key, first.display_name, first.width, first.height) == (
        KEY_A,
        "a.png",
        640,
        480,
    )
    assert first.created_at == T0
    assert second.created_at == T0 + timedelta(seconds=1)
    assert await repo.uploads.pending_uploads(alice.id) == [first, second]


async def test_an_upload_keeps_its_caption_and_only_a_pending_one_changes(repo: Repo) -> None:
    alice, bob = await user(repo, "alice"), await user(repo, "bob")
    used = await style_for(repo, alice, "used", (KEY_A,))
    waiting = await repo.uploads.add_upload(alice.id, KEY_B, "b.png", 64, 64, "neon, night")
    plain = await repo.uploads.add_upload(alice.id, KEY_C, "c.png", 64, 64)
    assert (waiting.caption, plain.caption) == ("neon, night", None)

    changed = await repo.uploads.set_pending_caption(alice.id, plain.id, "fog")
    cleared = await repo.uploads.set_pending_caption(alice.id, waiting.id, None)

    assert changed is not None
    assert changed.caption == "fog"
    assert cleared is not None
    assert cleared.caption is None
    assert [u.caption for u in await repo.uploads.pending_uploads(alice.id)] == [None, "fog"]
    # Not the owner's, or already trained on: unchanged.
    assert await repo.uploads.set_pending_caption(bob.id, plain.id, "mine") is None
    [trained] = await repo.uploads.style_uploads(used.id)
    assert await repo.uploads.set_pending_caption(alice.id, trained.id, "later") is None
    assert [u.caption for u in await repo.uploads.style_uploads(used.id)] == [None]
    assert [u.caption for u in await repo.uploads.pending_uploads(alice.id)] == [None, "fog"]


async def test_a_consent_keeps_the_digest_of_its_captions(repo: Repo) -> None:
    alice = await user(repo, "alice")
    plain = await repo.consents.add_consent(NewConsent(alice.id, "cc0", "v1", True, [KEY_A], T0))
    captioned = await repo.consents.add_consent(
        NewConsent(alice.id, "cc0", "v1", True, [KEY_A], T0 + timedelta(seconds=1), "d" * 64)
    )

    assert plain.captions_sha256 is None
    assert captioned.captions_sha256 == "d" * 64
    assert await repo.consents.latest_consent(alice.id) == captioned


async def test_add_upload_for_unknown_user_is_refused(repo: Repo) -> None:
    with pytest.raises(RecordNotFound):
        await repo.uploads.add_upload(404, KEY_A, "a.png", 1, 1)


async def test_discard_pending_uploads_returns_and_removes_only_pending(repo: Repo) -> None:
    alice, bob = await user(repo, "alice"), await user(repo, "bob")
    style = await style_for(repo, alice, "used", (KEY_A,))
    pending = await uploads(repo, alice, KEY_B, KEY_C)
    bobs = await uploads(repo, bob, KEY_B)

    removed = await repo.uploads.discard_pending_uploads(alice.id)

    assert removed == pending
    assert await repo.uploads.pending_uploads(alice.id) == []
    assert await repo.uploads.pending_uploads(bob.id) == bobs
    assert [u.blob_key for u in await repo.uploads.style_uploads(style.id)] == [KEY_A]
    assert await repo.uploads.discard_pending_uploads(alice.id) == []


async def test_upload_ids_are_not_reused_after_discard(repo: Repo) -> None:
    alice = await user(repo)
    (old,) = await uploads(repo, alice, KEY_A)
    await repo.uploads.discard_pending_uploads(alice.id)
    (new,) = await uploads(repo, alice, KEY_A)
    assert new.id > old.id


async def test_unreferenced_blob_keys_are_the_ones_safe_to_delete(repo: Repo) -> None:
    alice, bob = await user(repo, "alice"), await user(repo, "bob")
    shared_key, lora_key, image_key = "d" * 64, "e" * 64, "f" * 64
    await uploads(repo, alice, KEY_A, KEY_B, shared_key)
    await uploads(repo, bob, shared_key)
    style = await style_for(repo, bob, "ink", (KEY_C,))
    await repo.styles.set_style_status(style.id, StyleStatus.READY, lora_key)
    await repo.jobs.add_job(NewJob("job-1", "generate", bob.id, requester(), T0))
    await repo.outputs.add_outputs([output("out-1", "job-1", bob)])
    await repo.outputs.set_output_blob("out-1", image_key, 1)

    removed = await repo.uploads.discard_pending_uploads(alice.id)
    keys = [u.blob_key for u in removed] + [KEY_C, lora_key, image_key, KEY_A]

    assert await repo.unreferenced_blob_keys(keys) == {KEY_A, KEY_B}
    assert await repo.unreferenced_blob_keys([]) == set()


# -- consents -----------------------------------------------------------------


async def test_latest_consent_is_the_newest_unused_one(repo: Repo) -> None:
    alice, bob = await user(repo, "alice"), await user(repo, "bob")
    assert await repo.consents.latest_consent(alice.id) is None

    older = await repo.consents.add_consent(NewConsent(alice.id, "cc0", "v1", True, [KEY_A], T0))
    newer = await repo.consents.add_consent(
        NewConsent(alice.id, "cc-by-4.0", "v2", False, (KEY_A, KEY_B), T0 + timedelta(minutes=5))
    )
    await repo.consents.add_consent(
        NewConsent(bob.id, "cc0", "v2", True, [KEY_C], T0 + timedelta(hours=1))
    )

    latest = await repo.consents.latest_consent(alice.id)
    assert latest == newer
    assert latest is not None
    assert latest.image_hashes == (KEY_A, KEY_B)
    assert latest.rights_confirmed is False
    assert (latest.licence, latest.terms_version, latest.style_id) == ("cc-by-4.0", "v2", None)

    await repo.styles.add_style(NewStyle(alice.id, "s", "<s>", newer.id, "tiny", {}, [], T0))
    assert await repo.consents.latest_consent(alice.id) == older


async def test_add_consent_for_unknown_user_is_refused(repo: Repo) -> None:
    with pytest.raises(RecordNotFound):
        await repo.consents.add_consent(NewConsent(404, "cc0", "v1", True, [KEY_A], T0))


# -- styles -------------------------------------------------------------------


async def test_add_style_ties_uploads_and_consent_to_the_new_style(repo: Repo) -> None:
    alice = await user(repo)
    ups = await uploads(repo, alice, KEY_A, KEY_B)
    extra = await repo.uploads.add_upload(alice.id, KEY_C, "later.png", 64, 64)
    consent = await repo.consents.add_consent(
        NewConsent(alice.id, "cc0", "v1", True, [KEY_A, KEY_B], T0)
    )
    settings: dict[str, object] = {"rank": 8, "lr": 1e-4, "tags": ["x", "y"], "nested": {"a": 1}}

    style = await repo.styles.add_style(
        NewStyle(alice.id, "ink", "<ink>", consent.id, "sd15", settings, [u.id for u in ups], T0)
    )

    assert style.status is StyleStatus.TRAINING
    assert style.visibility is Visibility.PRIVATE
    assert (style.owner_id, style.name, style.trigger, style.base_model) == (
        alice.id,
        "ink",
        "<ink>",
        "sd15",
    )
    assert (style.consent_id, style.shared_scope, style.lora_key) == (consent.id, None, None)
    assert style.train_settings == settings
    assert style.created_at == T0
    assert await repo.styles.get_style(style.id) == style
    assert await repo.styles.find_style(alice.id, "ink") == style
    assert await repo.uploads.pending_uploads(alice.id) == [extra]
    assert [u.id for u in await repo.uploads.style_uploads(style.id)] == [u.id for u in ups]
    assert all(u.style_id == style.id for u in await repo.uploads.style_uploads(style.id))
    assert await repo.consents.latest_consent(alice.id) is None


async def test_returned_train_settings_cannot_change_the_stored_style(repo: Repo) -> None:
    alice = await user(repo)
    style = await style_for(repo, alice, "ink")
    style.train_settings["rank"] = 999
    stored = await repo.styles.get_style(style.id)
    assert stored is not None
    assert stored.train_settings == {"rank": 4}


async def test_style_name_is_unique_per_owner_and_failure_changes_nothing(repo: Repo) -> None:
    alice, bob = await user(repo, "alice"), await user(repo, "bob")
    first = await style_for(repo, alice, "ink")
    ups = await uploads(repo, alice, KEY_B)
    consent = await repo.consents.add_consent(NewConsent(alice.id, "cc0", "v1", True, [KEY_B], T0))

    with pytest.raises(DuplicateStyleName) as caught:
        await repo.styles.add_style(
            NewStyle(alice.id, "ink", "<x>", consent.id, "tiny", {}, [ups[0].id], T0)
        )

    assert caught.value.owner_id == alice.id
    assert "ink" in str(caught.value)
    assert isinstance(caught.value, DuplicateRecord)
    assert await repo.uploads.pending_uploads(alice.id) == ups
    assert await repo.consents.latest_consent(alice.id) == consent
    assert await repo.styles.styles_named("ink") == [first]

    bobs = await style_for(repo, bob, "ink")
    assert await repo.styles.styles_named("ink") == [first, bobs]
    assert await repo.styles.find_style(bob.id, "ink") == bobs
    assert await repo.styles.find_style(bob.id, "other") is None
    assert await repo.styles.styles_named("nothing") == []


async def test_add_style_refuses_consent_or_uploads_it_may_not_use(repo: Repo) -> None:
    alice, bob = await user(repo, "alice"), await user(repo, "bob")
    (alice_upload,) = await uploads(repo, alice, KEY_A)
    (bob_upload,) = await uploads(repo, bob, KEY_B)
    alice_consent = await repo.consents.add_consent(
        NewConsent(alice.id, "cc0", "v1", True, [KEY_A], T0)
    )
    bob_consent = await repo.consents.add_consent(
        NewConsent(bob.id, "cc0", "v1", True, [KEY_B], T0)
    )
    used = await style_for(repo, alice, "used", (KEY_C,))

    async def attempt(consent_id: int, upload_ids: list[int]) -> None:
        await repo.styles.add_style(
            NewStyle(alice.id, "new", "<n>", consent_id, "tiny", {}, upload_ids, T0)
        )

    with pytest.raises(RecordNotFound, match="consent"):
        await attempt(bob_consent.id, [alice_upload.id])
    with pytest.raises(RecordNotFound, match="consent"):
        await attempt(used.consent_id, [alice_upload.id])
    with pytest.raises(RecordNotFound, match="uploads"):
        await attempt(alice_consent.id, [alice_upload.id, bob_upload.id])
    with pytest.raises(RecordNotFound, match="uploads"):
        await attempt(alice_consent.id, [9999])

    assert await repo.styles.find_style(alice.id, "new") is None
    assert await repo.uploads.pending_uploads(alice.id) == [alice_upload]
    assert await repo.uploads.pending_uploads(bob.id) == [bob_upload]
    assert await repo.consents.latest_consent(alice.id) == alice_consent


async def test_candidate_styles_are_own_same_scope_and_public(repo: Repo) -> None:
    alice, bob, carol = await user(repo, "alice"), await user(repo, "bob"), await user(repo, "c")
    own = await style_for(repo, alice, "own")
    own_public = await style_for(repo, alice, "own-public")
    await repo.styles.set_style_visibility(own_public.id, Visibility.PUBLIC)
    bob_private = await style_for(repo, bob, "private")
    here = await style_for(repo, bob, "here")
    await repo.styles.set_style_visibility(here.id, Visibility.SERVER, "discord:1")
    elsewhere = await style_for(repo, carol, "elsewhere")
    await repo.styles.set_style_visibility(elsewhere.id, Visibility.SERVER, "discord:2")
    public = await style_for(repo, carol, "public")
    await repo.styles.set_style_visibility(public.id, Visibility.PUBLIC)

    in_server = await repo.styles.candidate_styles(alice.id, "discord:1")
    in_dm = await repo.styles.candidate_styles(alice.id, None)
    for_bob = await repo.styles.candidate_styles(bob.id, "discord:2")

    assert [s.id for s in in_server] == [own.id, own_public.id, here.id, public.id]
    assert [s.id for s in in_dm] == [own.id, own_public.id, public.id]
    assert [s.id for s in for_bob] == [
        own_public.id,
        bob_private.id,
        here.id,
        elsewhere.id,
        public.id,
    ]
    shared = next(s for s in in_server if s.id == here.id)
    assert (shared.visibility, shared.shared_scope) == (Visibility.SERVER, "discord:1")


async def test_set_style_visibility_needs_a_scope_exactly_for_server(repo: Repo) -> None:
    alice = await user(repo)
    style = await style_for(repo, alice, "ink")
    with pytest.raises(ValueError, match="shared_scope"):
        await repo.styles.set_style_visibility(style.id, Visibility.SERVER)
    with pytest.raises(ValueError, match="shared_scope"):
        await repo.styles.set_style_visibility(style.id, Visibility.PUBLIC, "discord:1")
    with pytest.raises(RecordNotFound):
        await repo.styles.set_style_visibility(9999, Visibility.PUBLIC)

    await repo.styles.set_style_visibility(style.id, Visibility.SERVER, "discord:1")
    await repo.styles.set_style_visibility(style.id, Visibility.PRIVATE)
    stored = await repo.styles.get_style(style.id)
    assert stored is not None
    assert (stored.visibility, stored.shared_scope) == (Visibility.PRIVATE, None)


async def test_set_style_status_keeps_the_lora_key_unless_given(repo: Repo) -> None:
    alice = await user(repo)
    style = await style_for(repo, alice, "ink")

    await repo.styles.set_style_status(style.id, StyleStatus.READY, KEY_B)
    ready = await repo.styles.get_style(style.id)
    await repo.styles.set_style_status(style.id, StyleStatus.FAILED)
    failed = await repo.styles.get_style(style.id)

    assert ready is not None
    assert failed is not None
    assert (ready.status, ready.lora_key) == (StyleStatus.READY, KEY_B)
    assert (failed.status, failed.lora_key) == (StyleStatus.FAILED, KEY_B)
    with pytest.raises(RecordNotFound):
        await repo.styles.set_style_status(9999, StyleStatus.READY)
    with pytest.raises(ValueError, match="bogus"):
        await repo.styles.set_style_status(style.id, "bogus")  # type: ignore[arg-type]
    assert await repo.styles.get_style(9999) is None


# -- jobs ---------------------------------------------------------------------


async def test_add_job_is_queued_and_keeps_its_origin(repo: Repo) -> None:
    alice = await user(repo)
    style = await style_for(repo, alice, "ink")
    origin = requester("alice", server="guild1")

    job = await repo.jobs.add_job(NewJob("job-1", "train", alice.id, origin, T0, style.id))
    dm_job = await repo.jobs.add_job(
        NewJob("job-2", "generate", alice.id, requester("a", None), T0)
    )

    assert job.status is JobStatus.QUEUED
    assert (job.kind, job.user_id, job.style_id) == ("train", alice.id, style.id)
    assert (job.step, job.total, job.error) == (0, 0, None)
    assert job.created_at == job.updated_at == T0
    assert job.origin == origin
    assert job.origin.scope == "discord:guild1"
    assert await repo.jobs.get_job("job-1") == job
    fetched_dm = await repo.jobs.get_job("job-2")
    assert fetched_dm == dm_job
    assert fetched_dm is not None
    assert fetched_dm.origin.server_id is None
    assert await repo.jobs.get_job("nope") is None


async def test_add_job_refuses_duplicates_and_unknown_references(repo: Repo) -> None:
    alice = await user(repo)
    await repo.jobs.add_job(NewJob("job-1", "generate", alice.id, requester(), T0))
    with pytest.raises(DuplicateRecord):
        await repo.jobs.add_job(NewJob("job-1", "generate", alice.id, requester(), T0))
    with pytest.raises(RecordNotFound):
        await repo.jobs.add_job(NewJob("job-2", "generate", 404, requester(), T0))
    with pytest.raises(RecordNotFound):
        await repo.jobs.add_job(NewJob("job-3", "train", alice.id, requester(), T0, style_id=404))
    assert [j.id for j in await repo.jobs.active_jobs()] == ["job-1"]


async def test_update_job_changes_only_what_it_is_given(repo: Repo) -> None:
    alice = await user(repo)
    await repo.jobs.add_job(NewJob("job-1", "train", alice.id, requester(), T0))
    t1, t2 = T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)

    await repo.jobs.update_job("job-1", JobStatus.RUNNING, t1, step=3, total=100)
    running = await repo.jobs.get_job("job-1")
    await repo.jobs.update_job("job-1", JobStatus.FAILED, t2, error="out of memory")
    failed = await repo.jobs.get_job("job-1")

    assert running is not None
    assert failed is not None
    assert (running.status, running.step, running.total, running.updated_at) == (
        JobStatus.RUNNING,
        3,
        100,
        t1,
    )
    assert running.error is None
    assert (failed.status, failed.step, failed.total, failed.error) == (
        JobStatus.FAILED,
        3,
        100,
        "out of memory",
    )
    assert failed.updated_at == t2
    assert failed.created_at == T0
    with pytest.raises(RecordNotFound):
        await repo.jobs.update_job("nope", JobStatus.RUNNING, t2)


async def test_active_jobs_are_unfinished_oldest_first_optionally_per_user(repo: Repo) -> None:
    alice, bob = await user(repo, "alice"), await user(repo, "bob")
    await repo.jobs.add_job(
        NewJob("late", "generate", alice.id, requester(), T0 + timedelta(minutes=2))
    )
    await repo.jobs.add_job(NewJob("early", "generate", bob.id, requester(), T0))
    await repo.jobs.add_job(
        NewJob("tie-1", "generate", alice.id, requester(), T0 + timedelta(minutes=1))
    )
    await repo.jobs.add_job(
        NewJob("tie-2", "generate", bob.id, requester(), T0 + timedelta(minutes=1))
    )
    for done, status in [("x1", JobStatus.FINISHED), ("x2", JobStatus.FAILED)]:
        await repo.jobs.add_job(NewJob(done, "generate", alice.id, requester(), T0))
        await repo.jobs.update_job(done, status, T0)
    await repo.jobs.add_job(NewJob("x3", "generate", bob.id, requester(), T0))
    await repo.jobs.update_job("x3", JobStatus.CANCELLED, T0)
    await repo.jobs.update_job("late", JobStatus.RUNNING, T0 + timedelta(minutes=3))

    assert [j.id for j in await repo.jobs.active_jobs()] == ["early", "tie-1", "tie-2", "late"]
    assert [j.id for j in await repo.jobs.active_jobs(alice.id)] == ["tie-1", "late"]
    assert [j.id for j in await repo.jobs.active_jobs(bob.id)] == ["early", "tie-2"]
    assert await repo.jobs.active_jobs(9999) == []


# -- outputs ------------------------------------------------------------------


async def test_outputs_are_stored_in_order_and_get_their_blob_later(repo: Repo) -> None:
    alice = await user(repo)
    style = await style_for(repo, alice, "ink")
    await repo.jobs.add_job(NewJob("job-1", "generate", alice.id, requester(), T0, style.id))
    await repo.jobs.add_job(NewJob("job-2", "generate", alice.id, requester(), T0))
    batch = [output(f"out-{n}", "job-1", alice, style.id) for n in (3, 1, 2)]

    await repo.outputs.add_outputs(batch)
    await repo.outputs.add_outputs([output("other", "job-2", alice)])

    assert await repo.outputs.job_outputs("job-1") == batch
    assert await repo.outputs.get_output("out-1") == batch[1]
    assert batch[1].blob_key is None
    assert await repo.outputs.get_output("missing") is None

    await repo.outputs.set_output_blob("out-1", KEY_C, seed=2**63 - 1)
    finished = await repo.outputs.get_output("out-1")
    assert finished is not None
    assert (finished.blob_key, finished.seed) == (KEY_C, 2**63 - 1)
    assert (finished.prompt, finished.guidance, finished.style_id) == ("a cat", 7.5, style.id)
    assert [o.id for o in await repo.outputs.job_outputs("job-2")] == ["other"]
    with pytest.raises(RecordNotFound):
        await repo.outputs.set_output_blob("missing", KEY_C, 1)
    with pytest.raises(ValueError, match="64-bit"):
        await repo.outputs.set_output_blob("out-1", KEY_C, 2**64 - 1)


async def test_add_outputs_is_all_or_nothing(repo: Repo) -> None:
    alice = await user(repo)
    await repo.jobs.add_job(NewJob("job-1", "generate", alice.id, requester(), T0))
    await repo.outputs.add_outputs([output("taken", "job-1", alice)])

    with pytest.raises(DuplicateRecord):
        await repo.outputs.add_outputs(
            [output("fresh", "job-1", alice), output("taken", "job-1", alice)]
        )
    with pytest.raises(RecordNotFound):
        await repo.outputs.add_outputs(
            [output("fresh", "job-1", alice), output("x", "no-job", alice)]
        )

    assert await repo.outputs.get_output("fresh") is None
    assert [o.id for o in await repo.outputs.job_outputs("job-1")] == ["taken"]


# -- times --------------------------------------------------------------------


async def test_times_come_back_as_aware_utc_and_naive_ones_are_refused(repo: Repo) -> None:
    alice = await user(repo)
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=plus_two)

    consent = await repo.consents.add_consent(
        NewConsent(alice.id, "cc0", "v1", True, [KEY_A], local)
    )
    job = await repo.jobs.add_job(NewJob("job-1", "generate", alice.id, requester(), local))
    stored = await repo.consents.latest_consent(alice.id)
    stored_job = await repo.jobs.get_job("job-1")

    assert stored is not None
    assert stored_job is not None
    for moment in (consent.created_at, stored.created_at, job.created_at, stored_job.updated_at):
        assert moment == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
        assert moment.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="naive"):
        await repo.jobs.add_job(
            NewJob("job-2", "generate", alice.id, requester(), datetime(2024, 1, 1))
        )
    assert await repo.jobs.get_job("job-2") is None


# -- transactions -------------------------------------------------------------


class Boom(Exception):
    pass


async def test_transaction_commits_all_writes_together(repo: Repo) -> None:
    async with repo.transaction():
        alice = await user(repo)
        style = await style_for(repo, alice, "ink")
        await repo.jobs.add_job(NewJob("job-1", "train", alice.id, requester(), T0, style.id))

    assert await repo.styles.get_style(style.id) == style
    assert await repo.jobs.get_job("job-1") is not None


async def test_transaction_rolls_back_everything_on_error(repo: Repo) -> None:
    bob = await user(repo, "bob")
    made: list[User] = []

    async def doomed() -> None:
        async with repo.transaction():
            alice = await user(repo, "alice")
            made.append(alice)
            await style_for(repo, alice, "ink")
            await repo.jobs.add_job(NewJob("job-1", "train", alice.id, requester(), T0))
            await repo.uploads.add_upload(bob.id, KEY_B, "b.png", 1, 1)
            raise Boom

    with pytest.raises(Boom):
        await doomed()

    assert await repo.users.get_user(made[0].id) is None
    assert await repo.styles.styles_named("ink") == []
    assert await repo.jobs.get_job("job-1") is None
    assert await repo.uploads.pending_uploads(bob.id) == []
    assert await repo.users.get_user(bob.id) == bob
    # The repository is still usable, and ids freed by the rollback are fine to reuse.
    again = await user(repo, "alice")
    assert await repo.users.get_user(again.id) == again


async def test_nested_failure_undoes_only_the_inner_part(repo: Repo) -> None:
    ghosts: list[User] = []

    async def inner_fails() -> None:
        async with repo.transaction():
            ghosts.append(await user(repo, "ghost"))
            raise Boom

    async with repo.transaction():
        alice = await user(repo, "alice")
        with pytest.raises(Boom):
            await inner_fails()
        await style_for(repo, alice, "ink")
        # A writing method that fails inside a transaction undoes only itself.
        with pytest.raises(DuplicateStyleName):
            await style_for(repo, alice, "ink", (KEY_B,))
        await repo.jobs.add_job(NewJob("job-1", "generate", alice.id, requester(), T0))

    assert await repo.users.get_user(ghosts[0].id) is None
    assert await repo.users.get_user(alice.id) == alice
    assert len(await repo.styles.styles_named("ink")) == 1
    assert [u.blob_key for u in await repo.uploads.pending_uploads(alice.id)] == [KEY_B]
    assert await repo.jobs.get_job("job-1") is not None


async def test_other_coroutines_never_see_or_lose_to_an_open_transaction(repo: Repo) -> None:
    alice = await user(repo, "alice")
    inside = asyncio.Event()
    seen: list[list[Upload]] = []

    async def failing() -> None:
        async with repo.transaction():
            await repo.uploads.add_upload(alice.id, KEY_A, "doomed.png", 1, 1)
            inside.set()
            for _ in range(5):
                await asyncio.sleep(0)
            raise Boom

    async def reader() -> None:
        await inside.wait()
        seen.append(await repo.uploads.pending_uploads(alice.id))

    async def writer() -> None:
        await inside.wait()
        await repo.uploads.add_upload(alice.id, KEY_B, "kept.png", 1, 1)

    results = await asyncio.gather(failing(), reader(), writer(), return_exceptions=True)

    assert isinstance(results[0], Boom)
    assert results[1:] == [None, None]
    assert [u.display_name for u in seen[0]] in ([], ["kept.png"])
    assert [u.display_name for u in await repo.uploads.pending_uploads(alice.id)] == ["kept.png"]


async def test_concurrent_transactions_do_not_mix(repo: Repo) -> None:
    owners = [await user(repo, f"u{n}") for n in range(8)]

    async def work(n: int) -> None:
        async with repo.transaction():
            for key in (KEY_A, KEY_B, KEY_C):
                await repo.uploads.add_upload(owners[n].id, key, f"{n}.png", 1, 1)
                await asyncio.sleep(0)
            if n % 2:
                raise Boom

    results = await asyncio.gather(*(work(n) for n in range(8)), return_exceptions=True)

    for n, result in enumerate(results):
        pending = await repo.uploads.pending_uploads(owners[n].id)
        if n % 2:
            assert isinstance(result, Boom)
            assert pending == []
        else:
            assert result is None
            assert [u.blob_key for u in pending] == [KEY_A, KEY_B, KEY_C]


async def test_many_concurrent_writes_all_land_with_distinct_ids(repo: Repo) -> None:
    alice = await user(repo)
    made = await asyncio.gather(
        *(repo.uploads.add_upload(alice.id, KEY_A, f"{n}.png", 1, 1) for n in range(50))
    )
    assert len({u.id for u in made}) == 50
    assert sorted(u.id for u in await repo.uploads.pending_uploads(alice.id)) == sorted(
        u.id for u in made
    )


async def test_a_cancelled_transaction_rolls_back_and_frees_the_repository(repo: Repo) -> None:
    alice = await user(repo)
    started = asyncio.Event()

    async def slow() -> None:
        async with repo.transaction():
            await repo.uploads.add_upload(alice.id, KEY_A, "cancelled.png", 1, 1)
            started.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(slow())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async with asyncio.timeout(5):
        assert await repo.uploads.pending_uploads(alice.id) == []
        await repo.uploads.add_upload(alice.id, KEY_B, "after.png", 1, 1)
    assert [u.display_name for u in await repo.uploads.pending_uploads(alice.id)] == ["after.png"]


# -- durability ---------------------------------------------------------------


async def test_everything_survives_a_reopen(backend: Backend, repo: Repo) -> None:
    alice = await user(repo)
    style = await style_for(repo, alice, "ink")
    await repo.styles.set_style_visibility(style.id, Visibility.SERVER, "discord:1")
    await repo.styles.set_style_status(style.id, StyleStatus.READY, KEY_B)
    (pending,) = await uploads(repo, alice, KEY_C)
    consent = await repo.consents.add_consent(NewConsent(alice.id, "cc0", "v1", True, [KEY_C], T0))
    job = await repo.jobs.add_job(NewJob("job-1", "generate", alice.id, requester(), T0, style.id))
    await repo.jobs.update_job("job-1", JobStatus.RUNNING, T0, step=1, total=2)
    await repo.outputs.add_outputs([output("out-1", "job-1", alice, style.id)])
    await repo.outputs.set_output_blob("out-1", KEY_A, 99)
    before = (
        await repo.users.get_user(alice.id),
        await repo.styles.get_style(style.id),
        await repo.uploads.style_uploads(style.id),
        await repo.jobs.get_job(job.id),
        await repo.outputs.job_outputs(job.id),
    )

    reopened = await backend.reopen(repo)

    after = (
        await reopened.users.get_user(alice.id),
        await reopened.styles.get_style(style.id),
        await reopened.uploads.style_uploads(style.id),
        await reopened.jobs.get_job(job.id),
        await reopened.outputs.job_outputs(job.id),
    )
    assert after == before
    assert await reopened.uploads.pending_uploads(alice.id) == [pending]
    assert await reopened.consents.latest_consent(alice.id) == consent
    assert [s.id for s in await reopened.styles.candidate_styles(alice.id, None)] == [style.id]
    assert [j.id for j in await reopened.jobs.active_jobs()] == ["job-1"]


async def test_delete_style_removes_its_records_and_returns_their_blobs(repo: Repo) -> None:
    alice = await user(repo)
    style = await style_for(repo, alice, "ink", (KEY_A, KEY_B))
    await repo.styles.set_style_status(style.id, StyleStatus.READY, lora_key=KEY_C)
    await repo.jobs.add_job(NewJob("job-1", "generate", alice.id, requester(), T0, style.id))
    await repo.outputs.add_outputs([output("out-1", "job-1", alice, style.id)])
    await repo.outputs.set_output_blob("out-1", "d" * 64, 7)
    other = await style_for(repo, alice, "kept", (KEY_A,))  # shares KEY_A's content

    keys = await repo.styles.delete_style(style.id)

    assert keys == sorted({KEY_A, KEY_B, KEY_C, "d" * 64})
    assert await repo.styles.get_style(style.id) is None
    assert await repo.outputs.get_output("out-1") is None
    assert await repo.uploads.style_uploads(style.id) == []
    job = await repo.jobs.get_job("job-1")
    assert job is not None
    assert job.style_id is None
    assert await repo.consents.latest_consent(alice.id) is None  # its consent went with it
    # Only what nothing else uses is safe to delete: the other style keeps KEY_A.
    assert await repo.unreferenced_blob_keys(keys) == {KEY_B, KEY_C, "d" * 64}
    assert await repo.styles.get_style(other.id) is not None
    with pytest.raises(RecordNotFound):
        await repo.styles.delete_style(style.id)


async def test_delete_output_removes_one_record_and_returns_its_blob(repo: Repo) -> None:
    alice = await user(repo)
    await repo.jobs.add_job(NewJob("job-1", "generate", alice.id, requester(), T0))
    await repo.outputs.add_outputs(
        [output("out-1", "job-1", alice), output("out-2", "job-1", alice)]
    )
    await repo.outputs.set_output_blob("out-1", KEY_A, 5)

    assert await repo.outputs.delete_output("out-1") == KEY_A
    assert await repo.outputs.delete_output("out-2") is None
    assert await repo.outputs.get_output("out-1") is None
    assert await repo.outputs.job_outputs("job-1") == []
    with pytest.raises(RecordNotFound):
        await repo.outputs.delete_output("out-1")


# -- erasure --------------------------------------------------------------------


async def test_find_user_finds_without_creating(repo: Repo) -> None:
    assert await repo.users.find_user("discord", "id-alice") is None
    alice = await user(repo)
    assert await repo.users.find_user("discord", "id-alice") == alice
    assert await repo.users.find_user("telegram", "id-alice") is None
    assert await repo.users.find_user("discord", "id-nobody") is None
    assert await repo.users.get_user(alice.id + 1) is None  # nothing else was made


async def test_user_and_style_outputs_are_by_maker_and_by_style(repo: Repo) -> None:
    alice, bob = await user(repo, "alice"), await user(repo, "bob")
    ink = await style_for(repo, alice, "ink")
    await repo.jobs.add_job(NewJob("job-a", "generate", alice.id, requester("a"), T0))
    await repo.jobs.add_job(NewJob("job-b", "generate", bob.id, requester("b"), T0, ink.id))
    await repo.outputs.add_outputs([output("a-1", "job-a", alice), output("a-2", "job-a", alice)])
    await repo.outputs.add_outputs([output("b-1", "job-b", bob, ink.id)])

    assert [o.id for o in await repo.outputs.user_outputs(alice.id)] == ["a-1", "a-2"]
    assert [o.id for o in await repo.outputs.user_outputs(bob.id)] == ["b-1"]
    assert [o.id for o in await repo.outputs.style_outputs(ink.id)] == ["b-1"]
    assert await repo.outputs.style_outputs(ink.id + 1) == []


async def test_erase_user_removes_every_remaining_record_and_returns_their_blobs(
    repo: Repo,
) -> None:
    alice, bob = await user(repo, "alice"), await user(repo, "bob")
    sea = await style_for(repo, bob, "sea", (KEY_A,))
    await uploads(repo, alice, KEY_A, KEY_B)  # waiting; KEY_A is also Bob's
    await repo.consents.add_consent(NewConsent(alice.id, "cc0-1.0", "v1", True, [KEY_A, KEY_B], T0))
    await repo.jobs.add_job(NewJob("job-a", "generate", alice.id, requester("a"), T0, sea.id))
    await repo.outputs.add_outputs([output("a-1", "job-a", alice, sea.id)])
    await repo.outputs.set_output_blob("a-1", KEY_C, 3)
    await repo.jobs.add_job(NewJob("job-b", "generate", bob.id, requester("b"), T0, sea.id))
    await repo.outputs.add_outputs([output("b-1", "job-b", bob, sea.id)])

    keys = await repo.users.erase_user(alice.id)

    assert keys == [KEY_A, KEY_B, KEY_C]
    assert await repo.users.get_user(alice.id) is None
    assert await repo.users.find_user("discord", "id-alice") is None
    assert await repo.uploads.pending_uploads(alice.id) == []
    assert await repo.consents.latest_consent(alice.id) is None
    assert await repo.jobs.get_job("job-a") is None
    assert await repo.outputs.user_outputs(alice.id) == []
    assert await repo.unreferenced_blob_keys(keys) == {KEY_B, KEY_C}  # Bob still uses A
    # Bob's records are whole.
    assert await repo.styles.get_style(sea.id) is not None
    assert [o.id for o in await repo.outputs.user_outputs(bob.id)] == ["b-1"]
    assert await repo.jobs.get_job("job-b") is not None
    with pytest.raises(RecordNotFound):
        await repo.users.erase_user(alice.id)


async def test_erase_user_refuses_while_they_own_a_style_and_changes_nothing(
    repo: Repo,
) -> None:
    alice = await user(repo)
    ink = await style_for(repo, alice, "ink")
    pending = await uploads(repo, alice, KEY_B)
    await repo.jobs.add_job(NewJob("job-a", "train", alice.id, requester("a"), T0, ink.id))

    with pytest.raises(RepositoryError):
        await repo.users.erase_user(alice.id)

    assert await repo.users.get_user(alice.id) == alice
    assert await repo.uploads.pending_uploads(alice.id) == pending
    assert await repo.jobs.get_job("job-a") is not None
    assert await repo.styles.get_style(ink.id) is not None


async def test_suggested_captions_go_to_the_owners_waiting_images_until_decided(
    repo: Repo,
) -> None:
    alice, bob = await user(repo, "alice"), await user(repo, "bob")
    used = await style_for(repo, alice, "used", (KEY_A,))
    first = await repo.uploads.add_upload(alice.id, KEY_B, "b.png", 64, 64, "mine")
    await repo.uploads.add_upload(alice.id, KEY_C, "c.png", 64, 64)
    await repo.uploads.add_upload(bob.id, KEY_B, "b.png", 64, 64)

    count = await repo.uploads.suggest_pending_captions(
        alice.id, {KEY_A: "trained", KEY_B: "a harbour", KEY_C: "fog"}
    )

    assert count == 2  # not the image already trained on, nor Bob's copy of KEY_B
    waiting = await repo.uploads.pending_uploads(alice.id)
    assert [(u.caption, u.suggested_caption) for u in waiting] == [
        ("mine", "a harbour"),
        (None, "fog"),
    ]
    assert [u.suggested_caption for u in await repo.uploads.pending_uploads(bob.id)] == [None]
    assert [u.suggested_caption for u in await repo.uploads.style_uploads(used.id)] == [None]
    # Setting the caption decides it: the suggestion goes.
    decided = await repo.uploads.set_pending_caption(alice.id, first.id, "a harbour")
    assert decided is not None
    assert (decided.caption, decided.suggested_caption) == ("a harbour", None)
