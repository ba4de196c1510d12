"""In-memory fakes of the six record stores (stylebot.bot.core.stores), on the tables of
an `InMemoryUnitOfWork`. They behave like the SQLite stores in every way the core can
observe: same ordering, same errors, same transaction semantics;
`tests/integration/storage/` runs one contract suite against both. Over 400 lines:
one short class per store, kept side by side like the port they fake.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from stylebot.bot.core.errors import (
    DuplicateRecord,
    DuplicateStyleName,
    RecordNotFound,
    RepositoryError,
)
from stylebot.bot.core.hash_bands import hash_bands
from stylebot.bot.core.model import (
    Consent,
    Job,
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
from stylebot.bot.core.perceptual import PerceptualHash
from stylebot.queue.payloads import StyleMetrics, TrainedBase, ValidationPoint
from tests.fakes.memory_tables import MemoryStore, _check_seed, _json_copy, _style_copy, _utc


class InMemoryUserStore(MemoryStore):
    async def get_or_create_user(
        self, platform: str, platform_user_id: str, display_name: str
    ) -> User:
        async with self.transaction():
            for user in self._t.users.values():
                if (user.platform, user.platform_user_id) == (platform, platform_user_id):
                    if user.display_name != display_name:
                        user = replace(user, display_name=display_name)
                        self._t.users[user.id] = user
                    return user
            user = User(
                id=max(self._t.users, default=0) + 1,
                platform=platform,
                platform_user_id=platform_user_id,
                display_name=display_name,
                created_at=_utc(self._now()),
            )
            self._t.users[user.id] = user
            return user

    async def get_user(self, user_id: int) -> User | None:
        async with self._reading():
            return self._t.users.get(user_id)

    async def find_user(self, platform: str, platform_user_id: str) -> User | None:
        async with self._reading():
            for user in self._t.users.values():
                if (user.platform, user.platform_user_id) == (platform, platform_user_id):
                    return user
            return None

    async def erase_user(self, user_id: int) -> list[str]:
        async with self.transaction():
            t = self._t
            self._need_user(user_id, f"user {user_id} does not exist")
            if any(s.owner_id == user_id for s in t.styles.values()):
                raise RepositoryError(
                    f"user {user_id} still owns styles: delete them before erasing the user"
                )
            keys = {u.blob_key for u in t.uploads.values() if u.user_id == user_id}
            keys |= {
                o.blob_key
                for o in t.outputs.values()
                if o.user_id == user_id and o.blob_key is not None
            }
            keys |= {
                o.source_key
                for o in t.outputs.values()
                if o.user_id == user_id and o.source_key is not None
            }
            keys |= {
                o.mask_key
                for o in t.outputs.values()
                if o.user_id == user_id and o.mask_key is not None
            }
            t.outputs = {k: o for k, o in t.outputs.items() if o.user_id != user_id}
            t.uploads = {k: u for k, u in t.uploads.items() if u.user_id != user_id}
            t.consents = {k: c for k, c in t.consents.items() if c.user_id != user_id}
            t.jobs = {k: j for k, j in t.jobs.items() if j.user_id != user_id}
            del t.users[user_id]
        return sorted(keys)


class InMemoryUploadStore(MemoryStore):
    async def add_upload(
        self,
        user_id: int,
        blob_key: str,
        display_name: str,
        width: int,
        height: int,
        caption: str | None = None,
    ) -> Upload:
        created_at = _utc(self._now())
        async with self.transaction():
            self._need_user(user_id, f"user {user_id} does not exist")
            self._t.upload_seq += 1
            upload = Upload(
                id=self._t.upload_seq,
                user_id=user_id,
                blob_key=blob_key,
                display_name=display_name,
                width=width,
                height=height,
                created_at=created_at,
                caption=caption,
            )
            self._t.uploads[upload.id] = upload
            return upload

    async def set_pending_caption(
        self, user_id: int, upload_id: int, caption: str | None
    ) -> Upload | None:
        async with self.transaction():
            upload = self._t.uploads.get(upload_id)
            if upload is None or upload.user_id != user_id or upload.style_id is not None:
                return None
            self._t.uploads[upload_id] = replace(upload, caption=caption, suggested_caption=None)
            return self._t.uploads[upload_id]

    async def suggest_pending_captions(self, user_id: int, suggestions: Mapping[str, str]) -> int:
        async with self.transaction():
            waiting = [u for u in self._pending(user_id) if u.blob_key in suggestions]
            for upload in waiting:
                suggested = suggestions[upload.blob_key]
                self._t.uploads[upload.id] = replace(upload, suggested_caption=suggested)
            return len(waiting)

    async def pending_uploads(self, user_id: int) -> list[Upload]:
        async with self._reading():
            return self._pending(user_id)

    async def discard_pending_uploads(self, user_id: int) -> list[Upload]:
        async with self.transaction():
            removed = self._pending(user_id)
            for upload in removed:
                del self._t.uploads[upload.id]
            return removed

    async def style_uploads(self, style_id: int) -> list[Upload]:
        async with self._reading():
            return sorted(
                (u for u in self._t.uploads.values() if u.style_id == style_id),
                key=lambda u: u.id,
            )


class InMemoryConsentStore(MemoryStore):
    async def add_consent(self, new: NewConsent) -> Consent:
        hashes = tuple(_json_copy(list(new.image_hashes)))
        created = _utc(new.created_at)
        async with self.transaction():
            self._need_user(new.user_id, f"user {new.user_id} does not exist")
            consent = Consent(
                id=max(self._t.consents, default=0) + 1,
                user_id=new.user_id,
                licence=new.licence,
                terms_version=new.terms_version,
                rights_confirmed=bool(new.rights_confirmed),
                image_hashes=hashes,
                created_at=created,
                captions_sha256=new.captions_sha256,
            )
            self._t.consents[consent.id] = consent
            return consent

    async def latest_consent(self, user_id: int) -> Consent | None:
        async with self._reading():
            unused = [
                c for c in self._t.consents.values() if c.user_id == user_id and c.style_id is None
            ]
            return max(unused, key=lambda c: (c.created_at, c.id), default=None)


class InMemoryStyleStore(MemoryStore):
    async def add_style(self, new: NewStyle) -> Style:
        owner_id, name, consent_id = new.owner_id, new.name, new.consent_id
        settings = _json_copy(new.train_settings)
        created = _utc(new.created_at)
        wanted = sorted(set(new.upload_ids))
        async with self.transaction():
            consent = self._t.consents.get(consent_id)
            if consent is None or consent.user_id != owner_id or consent.style_id is not None:
                raise RecordNotFound(f"user {owner_id} has no unused consent {consent_id}")
            missing = [
                i
                for i in wanted
                if (u := self._t.uploads.get(i)) is None
                or u.user_id != owner_id
                or u.style_id is not None
            ]
            if missing:
                raise RecordNotFound(
                    f"uploads {missing} are not pending uploads of user {owner_id}"
                )
            if any(s.owner_id == owner_id and s.name == name for s in self._t.styles.values()):
                raise DuplicateStyleName(owner_id, name)
            style = Style(
                id=max(self._t.styles, default=0) + 1,
                owner_id=owner_id,
                name=name,
                trigger=new.trigger,
                visibility=Visibility.PRIVATE,
                status=StyleStatus.TRAINING,
                consent_id=consent_id,
                base_model=new.base_model,
                created_at=created,
                train_settings=settings,
            )
            self._t.styles[style.id] = style
            for i in wanted:
                self._t.uploads[i] = replace(self._t.uploads[i], style_id=style.id)
            self._t.consents[consent_id] = replace(consent, style_id=style.id)
            return _style_copy(style)

    async def _styles_where(self, keep: Callable[[Style], bool]) -> list[Style]:
        async with self._reading():
            return [_style_copy(s) for _, s in sorted(self._t.styles.items()) if keep(s)]

    async def get_style(self, style_id: int) -> Style | None:
        found = await self._styles_where(lambda s: s.id == style_id)
        return found[0] if found else None

    async def find_style(self, owner_id: int, name: str) -> Style | None:
        found = await self._styles_where(lambda s: s.owner_id == owner_id and s.name == name)
        return found[0] if found else None

    async def styles_named(self, name: str) -> list[Style]:
        return await self._styles_where(lambda s: s.name == name)

    async def candidate_styles(self, owner_id: int, scope: str | None) -> list[Style]:
        return await self._styles_where(
            lambda s: (
                s.owner_id == owner_id
                or (
                    s.visibility is Visibility.SERVER
                    and scope is not None
                    and s.shared_scope == scope
                )
                or s.visibility is Visibility.PUBLIC
            )
        )

    async def set_style_status(
        self, style_id: int, status: StyleStatus, lora_key: str | None = None
    ) -> None:
        status = StyleStatus(status)
        async with self.transaction():
            style = self._need_style(style_id)
            self._t.styles[style_id] = replace(
                style, status=status, lora_key=lora_key if lora_key is not None else style.lora_key
            )

    async def set_style_export(self, style_id: int, export_key: str) -> None:
        async with self.transaction():
            self._need_style(style_id)
            self._t.style_exports[style_id] = export_key

    async def set_style_embedding(self, style_id: int, embedding_key: str) -> None:
        async with self.transaction():
            style = self._need_style(style_id)
            self._t.styles[style_id] = replace(style, embedding_key=embedding_key)

    async def style_export_key(self, style_id: int) -> str | None:
        async with self._reading():
            self._need_style(style_id)
            return self._t.style_exports.get(style_id)

    async def set_style_validation(self, style_id: int, curve: Sequence[ValidationPoint]) -> None:
        async with self.transaction():
            self._need_style(style_id)
            self._t.style_validation[style_id] = tuple(curve)

    async def style_validation(self, style_id: int) -> tuple[ValidationPoint, ...]:
        async with self._reading():
            self._need_style(style_id)
            return self._t.style_validation.get(style_id, ())

    async def set_style_metrics(self, style_id: int, metrics: StyleMetrics) -> None:
        async with self.transaction():
            self._need_style(style_id)
            self._t.style_metrics[style_id] = metrics

    async def set_style_base(self, style_id: int, base: TrainedBase) -> None:
        async with self.transaction():
            style = self._need_style(style_id)
            self._t.styles[style_id] = replace(
                style,
                base_model_variant=base.variant,
                base_model_sha256=base.sha256,
                base_model_licence=base.licence,
                base_model_licence_url=base.licence_url,
            )

    async def style_metrics(self, style_id: int) -> StyleMetrics | None:
        async with self._reading():
            self._need_style(style_id)
            return self._t.style_metrics.get(style_id)

    async def set_style_visibility(
        self, style_id: int, visibility: Visibility, shared_scope: str | None = None
    ) -> None:
        visibility = Visibility(visibility)
        if (visibility is Visibility.SERVER) != (shared_scope is not None):
            raise ValueError(
                "a server-shared style needs a shared_scope, and only a server-shared style has one"
            )
        async with self.transaction():
            style = self._need_style(style_id)
            self._t.styles[style_id] = replace(
                style, visibility=visibility, shared_scope=shared_scope
            )

    async def delete_style(self, style_id: int) -> list[str]:
        async with self.transaction():
            style = self._need_style(style_id)
            t = self._t
            keys = {u.blob_key for u in t.uploads.values() if u.style_id == style_id}
            keys |= {
                o.blob_key
                for o in t.outputs.values()
                if o.style_id == style_id and o.blob_key is not None
            }
            keys |= {
                o.source_key
                for o in t.outputs.values()
                if o.style_id == style_id and o.source_key is not None
            }
            keys |= {
                o.mask_key
                for o in t.outputs.values()
                if o.style_id == style_id and o.mask_key is not None
            }
            if style.lora_key is not None:
                keys.add(style.lora_key)
            if style.embedding_key is not None:
                keys.add(style.embedding_key)
            if style_id in t.style_exports:
                keys.add(t.style_exports.pop(style_id))
            t.style_validation.pop(style_id, None)
            t.style_metrics.pop(style_id, None)
            t.outputs = {k: o for k, o in t.outputs.items() if o.style_id != style_id}
            t.uploads = {k: u for k, u in t.uploads.items() if u.style_id != style_id}
            t.jobs = {
                k: replace(j, style_id=None) if j.style_id == style_id else j
                for k, j in t.jobs.items()
            }
            del t.styles[style_id]
            t.consents.pop(style.consent_id, None)
        return sorted(keys)


class InMemoryJobStore(MemoryStore):
    async def add_job(self, new: NewJob) -> Job:
        job_id, user_id, style_id = new.job_id, new.user_id, new.style_id
        created = _utc(new.created_at)
        origin = Requester(**_json_copy(dataclasses.asdict(new.origin)))
        async with self.transaction():
            if job_id in self._t.jobs:
                raise DuplicateRecord(f"job {job_id!r} already exists")
            if user_id not in self._t.users or (
                style_id is not None and style_id not in self._t.styles
            ):
                raise RecordNotFound(
                    f"job {job_id!r}: user {user_id} or style {style_id} does not exist"
                )
            job = Job(
                id=job_id,
                kind=new.kind,
                user_id=user_id,
                origin=origin,
                status=JobStatus.QUEUED,
                created_at=created,
                updated_at=created,
                style_id=style_id,
            )
            self._t.jobs[job_id] = job
            return job

    async def get_job(self, job_id: str) -> Job | None:
        async with self._reading():
            return self._t.jobs.get(job_id)

    async def update_job(
        self,
        job_id: str,
        status: JobStatus,
        updated_at: datetime,
        step: int | None = None,
        total: int | None = None,
        error: str | None = None,
    ) -> None:
        status = JobStatus(status)
        updated = _utc(updated_at)
        async with self.transaction():
            job = self._t.jobs.get(job_id)
            if job is None:
                raise RecordNotFound(f"job {job_id!r} does not exist")
            self._t.jobs[job_id] = replace(
                job,
                status=status,
                updated_at=updated,
                step=job.step if step is None else step,
                total=job.total if total is None else total,
                error=job.error if error is None else error,
            )

    async def cancel_active_job(self, job_id: str, updated_at: datetime) -> bool:
        async with self.transaction():
            job = self._t.jobs.get(job_id)
            if job is None or job.status.is_terminal:
                return False
            self._t.jobs[job_id] = replace(
                job, status=JobStatus.CANCELLED, updated_at=_utc(updated_at)
            )
            return True

    async def active_jobs(self, user_id: int | None = None) -> list[Job]:
        async with self._reading():
            order = {job_id: n for n, job_id in enumerate(self._t.jobs)}
            active = [
                j
                for j in self._t.jobs.values()
                if not j.status.is_terminal and (user_id is None or j.user_id == user_id)
            ]
            return sorted(active, key=lambda j: (j.created_at, order[j.id]))

    async def job_ids(
        self, *, user_id: int | None = None, style_id: int | None = None
    ) -> list[str]:
        if user_id is None and style_id is None:
            return []
        async with self._reading():
            return [
                j.id
                for j in self._t.jobs.values()
                if (user_id is None or j.user_id == user_id)
                and (style_id is None or j.style_id == style_id)
            ]


class InMemoryOutputStore(MemoryStore):
    async def add_outputs(self, outputs: Sequence[Output]) -> None:
        batch = []
        for output in outputs:
            _check_seed(output.seed)
            batch.append(
                replace(output, guidance=float(output.guidance), created_at=_utc(output.created_at))
            )
        async with self.transaction():
            for output in batch:
                if output.id in self._t.outputs:
                    raise DuplicateRecord(f"output {output.id!r} already exists")
                if (
                    output.job_id not in self._t.jobs
                    or output.user_id not in self._t.users
                    or (output.style_id is not None and output.style_id not in self._t.styles)
                ):
                    raise RecordNotFound(
                        f"output {output.id!r}: its job, user or style does not exist"
                    )
                self._t.outputs[output.id] = output

    async def get_output(self, output_id: str) -> Output | None:
        async with self._reading():
            return self._t.outputs.get(output_id)

    async def _outputs_where(self, keep: Callable[[Output], bool]) -> list[Output]:
        async with self._reading():
            order = {output_id: n for n, output_id in enumerate(self._t.outputs)}
            found = [o for o in self._t.outputs.values() if keep(o)]
            return sorted(found, key=lambda o: (o.created_at, order[o.id]))

    async def user_outputs(self, user_id: int) -> list[Output]:
        return await self._outputs_where(lambda o: o.user_id == user_id)

    async def style_outputs(self, style_id: int) -> list[Output]:
        return await self._outputs_where(lambda o: o.style_id == style_id)

    async def job_outputs(self, job_id: str) -> list[Output]:
        async with self._reading():
            return [o for o in self._t.outputs.values() if o.job_id == job_id]

    async def set_output_blob(self, output_id: str, blob_key: str, seed: int) -> None:
        _check_seed(seed)
        async with self.transaction():
            output = self._t.outputs.get(output_id)
            if output is None:
                raise RecordNotFound(f"output {output_id!r} does not exist")
            self._t.outputs[output_id] = replace(output, blob_key=blob_key, seed=seed)

    async def set_output_fingerprint(self, output_id: str, fingerprint: str) -> None:
        async with self.transaction():
            output = self._t.outputs.get(output_id)
            if output is None:
                raise RecordNotFound(f"output {output_id!r} does not exist")
            self._t.outputs[output_id] = replace(output, fingerprint=fingerprint)

    async def outputs_with_bands(self, probes: Sequence[tuple[int, str]]) -> list[Output]:
        wanted = set(probes)
        return await self._outputs_where(
            lambda o: (
                o.fingerprint is not None
                and not wanted.isdisjoint(hash_bands(PerceptualHash.from_hex(o.fingerprint)))
            )
        )

    async def delete_output(self, output_id: str) -> str | None:
        async with self.transaction():
            output = self._t.outputs.pop(output_id, None)
            if output is None:
                raise RecordNotFound(f"output {output_id!r} does not exist")
        return output.blob_key
