"""Structured logs: the job id on every line logged while a job is handled; no secret on any."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from tests.support.root_logging import restore_root_logging  # noqa: F401 (a fixture)

from stylebot.config import load_settings
from stylebot.logs import (
    bind_job_context,
    configure_logging,
    current_job_id,
    job_context,
    log_format_of,
)
from stylebot.metrics import observed_job

log = logging.getLogger("stylebot.test.logs")


@pytest.mark.usefixtures("restore_root_logging")
def test_text_lines_carry_the_job_id_inside_a_job_and_a_dash_outside() -> None:
    out = io.StringIO()
    configure_logging(logging.INFO, "text", out)
    log.info("before")
    with job_context("job-42"):
        log.info("inside")
        # A library logger (not stylebot's) gets the id too: the filter is on the handler.
        logging.getLogger("arq.worker").info("library line")
    log.info("after")
    lines = out.getvalue().splitlines()
    assert [line.split(" job=")[1] for line in lines] == [
        "-: before",
        "job-42: inside",
        "job-42: library line",
        "-: after",
    ]


@pytest.mark.usefixtures("restore_root_logging")
def test_json_lines_have_a_job_id_field_and_the_exception() -> None:
    out = io.StringIO()
    configure_logging(logging.INFO, "json", out)
    with job_context("job-7"):
        try:
            raise ValueError("bad input")
        except ValueError:
            log.exception("training failed")
    log.warning("no job here")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["job_id"] == "job-7"
    assert first["level"] == "ERROR"
    assert first["message"] == "training failed"
    assert "ValueError: bad input" in first["exception"]
    assert "job_id" not in second
    assert second["logger"] == "stylebot.test.logs"


@pytest.mark.usefixtures("restore_root_logging")
async def test_a_wrapped_job_logs_with_its_id_also_from_the_device_thread() -> None:
    out = io.StringIO()
    configure_logging(logging.INFO, "text", out)
    device = ThreadPoolExecutor(max_workers=1)

    async def job(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        log.info("on the loop")
        # How a worker runs device work so that its lines keep the job id:
        # run_in_executor does not carry context variables by itself.
        run_in_context = contextvars.copy_context().run
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(device, run_in_context, log.info, "on the device")
        return {"ok": True}

    try:
        await observed_job(job, "train")({}, {"job_id": "job-99"})
    finally:
        device.shutdown()
    assert current_job_id() is None  # the context ends with the job
    assert out.getvalue().count("job=job-99:") == 2


def test_the_log_format_setting_is_text_json_or_a_clear_error(tmp_path: Path) -> None:
    assert log_format_of(load_settings(environ={}, data_dir=tmp_path)) == "text"
    assert log_format_of(load_settings(environ={}, data_dir=tmp_path, log_format="JSON")) == "json"
    with pytest.raises(ValueError, match="text or json"):
        log_format_of(load_settings(environ={}, data_dir=tmp_path, log_format="xml"))


async def test_the_arq_hook_tags_the_rest_of_the_jobs_task_only() -> None:
    async def one_job(job_id: str) -> str | None:
        await bind_job_context({"job_id": job_id, "job_try": 1})
        await asyncio.sleep(0)
        return current_job_id()

    # arq runs each job in a task of its own, as these are.
    first, second = await asyncio.gather(
        asyncio.create_task(one_job("job-a")), asyncio.create_task(one_job("job-b"))
    )
    assert (first, second) == ("job-a", "job-b")
    assert current_job_id() is None


@pytest.mark.usefixtures("restore_root_logging")
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_log_lines_and_their_tracebacks_are_redacted(log_format: str) -> None:
    secret = 'q"uoted-secret-for-logs'
    stream = io.StringIO()
    configure_logging(logging.INFO, log_format, stream=stream, secrets=[secret])
    try:
        raise RuntimeError(f"refused {secret}")
    except RuntimeError:
        logging.getLogger("stylebot.test").exception("connect with %s failed", secret)
    output = stream.getvalue()
    assert "refused" in output
    assert "uoted-secret-for-logs" not in output
    if log_format == "json":
        assert "***" in json.loads(output.splitlines()[0])["exception"]
