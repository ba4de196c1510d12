"""What each image trains on at each step: the trigger, then its caption, dropped or
shuffled as set, and the same choice whenever a run is resumed."""

from __future__ import annotations

import pytest

from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.captions import TrainingCaptions, captioned

CAPTIONS = ("neon city, night, rain", "", "fog")


def captions(**settings: object) -> TrainingCaptions:
    return TrainingCaptions.for_run("sbt", CAPTIONS, 3, TrainSettings(seed=4, **settings))


def test_the_trigger_comes_first_then_the_caption() -> None:
    plain = captions()
    assert [plain.at_step(i, 1) for i in range(3)] == [
        "sbt, neon city, night, rain",
        "sbt",
        "sbt, fog",
    ]
    assert captioned("", "fog") == "fog"


def test_a_job_without_captions_trains_every_image_on_the_trigger() -> None:
    none = TrainingCaptions.for_run("sbt", (), 2, TrainSettings())
    assert [none.at_step(i, 9) for i in range(2)] == ["sbt", "sbt"]


def test_the_choices_depend_on_seed_step_and_image_only() -> None:
    """A resumed run builds its captions afresh: it must draw what the first one drew."""
    first, again = (
        captions(caption_dropout=0.5, shuffle_tags=True),
        captions(caption_dropout=0.5, shuffle_tags=True),
    )
    steps = range(1, 200)
    assert [first.at_step(0, s) for s in steps] == [again.at_step(0, s) for s in steps]
    other_seed = TrainingCaptions.for_run(
        "sbt", CAPTIONS, 3, TrainSettings(seed=5, caption_dropout=0.5, shuffle_tags=True)
    )
    assert [first.at_step(0, s) for s in steps] != [other_seed.at_step(0, s) for s in steps]


def test_dropout_leaves_the_trigger_alone_about_as_often_as_set() -> None:
    dropped = captions(caption_dropout=0.25)
    texts = [dropped.at_step(0, step) for step in range(1, 2001)]
    share = texts.count("sbt") / len(texts)
    assert share == pytest.approx(0.25, abs=0.04)
    assert set(texts) == {"sbt", "sbt, neon city, night, rain"}  # no shuffling asked


def test_shuffling_keeps_every_tag_and_the_trigger_first() -> None:
    shuffled = captions(shuffle_tags=True)
    texts = {shuffled.at_step(0, step) for step in range(1, 100)}
    assert len(texts) == 6  # every order of three tags
    for text in texts:
        trigger, *tags = text.split(", ")
        assert trigger == "sbt"
        assert sorted(tags) == ["neon city", "night", "rain"]


def test_held_out_images_keep_their_caption_as_written() -> None:
    varied = captions(caption_dropout=0.9, shuffle_tags=True)
    assert varied.fixed(0) == "sbt, neon city, night, rain"


def test_captions_must_be_one_per_image() -> None:
    with pytest.raises(ValueError, match="1 captions for 3 images"):
        TrainingCaptions.for_run("sbt", ("a",), 3, TrainSettings())
