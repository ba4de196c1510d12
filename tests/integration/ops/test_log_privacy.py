"""No job's arguments in any log line, at any level, from any logger or thread."""

from __future__ import annotations

import io
import logging
import threading

import pytest
from tests.support.root_logging import restore_root_logging  # noqa: F401 (a fixture)

from stylebot.log_privacy import REDACTED, private_texts, route_model_library_logs
from stylebot.logs import configure_logging

PROMPT = "a lighthouse by 7f3c9a at dawn"


@pytest.mark.usefixtures("restore_root_logging")
def test_a_running_jobs_prompt_is_redacted_from_any_logger_and_thread() -> None:
    out = io.StringIO()
    configure_logging(logging.DEBUG, "json", out)
    library = logging.getLogger("somelib.tokenization")

    with private_texts(PROMPT, "", None):
        # A library that quotes the prompt (e.g. a truncated-prompt warning), on another
        # thread, and an error whose message carries it.
        worker = threading.Thread(target=lambda: library.warning("truncated: %s", PROMPT))
        worker.start()
        worker.join()
        try:
            raise ValueError(f"cannot render {PROMPT!r}")
        except ValueError:
            logging.getLogger("stylebot.engine").exception("job failed")
    library.warning("after the job: %s", PROMPT)  # no longer registered: not hidden

    lines = out.getvalue().splitlines()
    assert PROMPT not in "\n".join(lines[:2])
    assert REDACTED in lines[0]
    assert REDACTED in lines[1]
    assert "ValueError" in lines[1]  # the trace is kept, redacted
    assert PROMPT in lines[2]


@pytest.mark.usefixtures("restore_root_logging")
def test_arqs_job_start_line_and_libraries_statement_logs_carry_no_arguments() -> None:
    out = io.StringIO()
    configure_logging(logging.DEBUG, "text", out)
    payload = {"job_id": "generate-1", "prompt": PROMPT}
    # arq.worker's own line, as arq 0.28 writes it.
    logging.getLogger("arq.worker").info(
        "%6.2fs → %s(%s)%s", 0.5, "generate-1:generate", payload, ""
    )
    # aiosqlite logs each statement with its parameters at DEBUG.
    logging.getLogger("aiosqlite").debug("operation %r", ("INSERT ...", (PROMPT,)))
    logging.getLogger("aiosqlite").warning("a warning stays")

    logged = out.getvalue()
    assert PROMPT not in logged
    assert "generate-1:generate(…)" in logged
    assert "a warning stays" in logged


@pytest.mark.usefixtures("restore_root_logging")
@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_the_cut_off_tail_of_a_long_prompt_is_not_logged(
    family: str, request: pytest.FixtureRequest
) -> None:
    """diffusers warns that a prompt over CLIP's 77 tokens was cut, quoting the tail as
    its tokenizer decodes it (lower-cased: no registered text matches). A real
    pipeline's warning, through the loggers the engine routes (both SDXL tokenizers)."""
    from stylebot.engine.models import load_pipeline

    model = request.getfixturevalue("tiny_sdxl_model_dir" if family == "sdxl" else "tiny_model_dir")
    pipe = load_pipeline(str(model), device="cpu", dtype="float32")
    out = io.StringIO()
    configure_logging(logging.INFO, "text", out)
    route_model_library_logs()
    prompt = "a lighthouse at dawn " * 20 + "and my Secret plan ZANZIBAR quokka"
    with private_texts(prompt):
        pipe.encode_prompt(
            prompt=prompt, device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=False
        )
    logged = out.getvalue()
    assert "was truncated" in logged  # the operator still learns prompts are being cut
    for word in ("zanzibar", "quokka", "secret", "lighthouse"):
        assert word not in logged.lower(), logged


async def test_the_telegram_error_line_names_the_update_not_what_the_user_wrote(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from telegram import Chat, Message, Update, User

    from stylebot.bot.telegram.adapter import _log_error

    ada = User(id=1001, first_name="Ada", is_bot=False)
    chat = Chat(id=1001, type=Chat.PRIVATE)
    message = Message(1, datetime.now(UTC), chat, from_user=ada, text=f"/imagine {PROMPT}")
    context = SimpleNamespace(error=RuntimeError("boom"))
    with caplog.at_level(logging.ERROR):
        await _log_error(Update(update_id=77, message=message), context)  # type: ignore[arg-type]
    assert "telegram update 77 failed" in caplog.text
    assert PROMPT not in caplog.text
