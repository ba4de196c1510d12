"""The public verify page in a real headless Chromium, against the real front end: its
SQLite database and blob store hold real marked outputs, one made in public and one
with a private style; the visitor uploads through the page's file input.

What a visitor reads is what /verify tells a stranger: the public output's record in
full, of the private one only who made it and when. Hostile uploads (not an image, an
SVG with script, a name and metadata full of markup, too big) get a clear error, and
nothing of them runs: `window.__xss` stays undefined.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace
from io import BytesIO
from pathlib import Path

from PIL import PngImagePlugin
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait
from tests.fakes.core import person
from tests.support.browser import upload
from tests.support.picture_edits import png_bytes
from tests.support.records import add_ready_style
from tests.support.verify_world import deliver, stored_picture, verify_world
from tests.support.watermark_images import scene

from stylebot.bootstrap import FrontEnd
from stylebot.bot.web.server import VerifyWebServer

# Discord ids as Discord has them: the page names a maker by theirs.
BOB_IN_SERVER = replace(person("bob"), user_id="811111111111111111")
ALICE_IN_SERVER = replace(person("alice"), user_id="822222222222222222")
PUBLIC_PROMPT = "a lighthouse at dusk"
SECRET_PROMPT = "the surprise for my sister"
SECRET_STYLE = "moonveil"
XSS = "typeof window.__xss"


async def marked_outputs(frontend: FrontEnd, folder: Path) -> dict[str, tuple[str, Path]]:
    """A public output of Bob's and one Alice made with her private style, delivered
    into the front end's own stores, each saved to a file as its maker received it."""
    world = verify_world(frontend.uow, frontend.blobs)
    await add_ready_style(
        frontend, "discord", ALICE_IN_SERVER.user_id, "Alice", SECRET_STYLE, b"lora"
    )
    made = {
        "public": await deliver(world, BOB_IN_SERVER, scene(512, 512, seed=41), PUBLIC_PROMPT),
        "private": await deliver(
            world, ALICE_IN_SERVER, scene(512, 512, seed=42), SECRET_PROMPT, style=SECRET_STYLE
        ),
    }
    files = {}
    for name, output_id in made.items():
        path = folder / f"{name}.png"
        path.write_bytes(png_bytes(await stored_picture(world, output_id)))
        files[name] = (output_id, path)
    return files


async def visit(browser: WebDriver, page: VerifyWebServer, path: Path) -> tuple[str, str, str]:
    """Upload `path`; the result's text, its verdict, and `typeof window.__xss` there."""
    text = await asyncio.to_thread(upload, browser, page.url, path)
    verdict = browser.find_element(By.ID, "result").get_attribute("data-verdict") or ""
    return text, verdict, await asyncio.to_thread(browser.execute_script, f"return {XSS}")


async def test_a_visitor_reads_what_a_stranger_would(
    frontend: FrontEnd, page: VerifyWebServer, browser: WebDriver, tmp_path: Path
) -> None:
    outputs = await marked_outputs(frontend, tmp_path)

    public_id, public_file = outputs["public"]
    text, verdict, _ = await visit(browser, page, public_file)
    assert verdict == "made"
    assert f"Made with stylebot: output {public_id}" in text
    # Discord's mention, which only Discord can resolve, says what it is.
    assert f"by: Discord user {BOB_IN_SERVER.user_id}, named 'Bob' when it was made" in text
    assert f"prompt: {PUBLIC_PROMPT}" in text

    private_id, private_file = outputs["private"]
    text, verdict, _ = await visit(browser, page, private_file)
    assert verdict == "made"
    assert f"Made with stylebot: output {private_id}" in text
    assert f"by: Discord user {ALICE_IN_SERVER.user_id}, named 'Alice' when it was made" in text
    assert "its prompt and style are shown only to its maker" in text
    source = browser.page_source
    assert SECRET_PROMPT not in source
    assert SECRET_STYLE not in source


async def test_hostile_uploads_get_a_clear_error_and_run_nothing(
    frontend: FrontEnd, page: VerifyWebServer, browser: WebDriver, tmp_path: Path
) -> None:
    not_an_image = tmp_path / "holiday.png"
    not_an_image.write_bytes(b"MZ\x90\x00 this is a program, not a picture\n" * 40)
    text, verdict, xss = await visit(browser, page, not_an_image)
    assert (verdict, xss) == ("error", "undefined")
    assert "“holiday.png” is not an image we can read" in text

    # An SVG whose name and content both carry script.
    svg_name = "<img src=x onerror=window.__xss=1>.svg"
    svg = tmp_path / svg_name
    svg.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" onload="window.__xss=2">'
        "<script>window.__xss=3</script></svg>"
    )
    text, verdict, xss = await visit(browser, page, svg)
    assert (verdict, xss) == ("error", "undefined")
    assert "we don't take “.svg” files" in text
    assert svg_name in text  # shown as text, not as markup
    assert browser.find_elements(By.CSS_SELECTOR, "#result img, #result svg") == []

    # A real picture whose name and metadata are markup: it is checked, and shown inert.
    picture_name = "<svg onload=window.__xss=4>.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "<script>window.__xss=5</script>")
    info.add_text("Title", '"><img src=x onerror=window.__xss=6>')
    buffer = BytesIO()
    scene(256, 256, seed=43).save(buffer, "PNG", pnginfo=info)
    picture = tmp_path / picture_name
    picture.write_bytes(buffer.getvalue())
    text, verdict, xss = await visit(browser, page, picture)
    assert (verdict, xss) == ("no-mark", "undefined")
    assert "No stylebot watermark found in this image." in text

    too_big = tmp_path / "huge.png"
    too_big.write_bytes(
        png_bytes(scene(64, 64, seed=44)) + bytes(frontend.settings.max_upload_bytes)
    )
    text, verdict, xss = await visit(browser, page, too_big)
    assert (verdict, xss) == ("error", "undefined")
    assert "more than the 2.0 MB limit" in text  # conftest: 2 MiB


async def test_dropping_a_file_on_the_page_checks_it(
    frontend: FrontEnd, page: VerifyWebServer, browser: WebDriver, tmp_path: Path
) -> None:
    """The drag-and-drop script runs under the page's Content-Security-Policy."""
    outputs = await marked_outputs(frontend, tmp_path)
    public_id, public_file = outputs["public"]
    encoded = base64.b64encode(public_file.read_bytes()).decode()
    await asyncio.to_thread(browser.get, page.url)
    await asyncio.to_thread(
        browser.execute_script,
        """
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const dropped = new DataTransfer();
        dropped.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
        document.dispatchEvent(
          new DragEvent("drop", {dataTransfer: dropped, bubbles: true, cancelable: true}));
        """,
        encoded,
    )
    await asyncio.to_thread(
        WebDriverWait(browser, 30).until, lambda d: d.find_elements(By.ID, "result")
    )
    assert f"Made with stylebot: output {public_id}" in browser.find_element(By.ID, "result").text
