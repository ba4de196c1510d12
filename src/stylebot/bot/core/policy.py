"""Limits and defaults the core enforces, set by the operator.

`PolicySettings` is the one definition of the knobs the operator sets directly:
`stylebot.config.Settings` inherits these fields (one `STYLEBOT_<NAME>` setting
each, its rule in `stylebot.config.POLICY_RULES`), and `Policy` adds what is
built from several settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stylebot.bot.core.images import ImageLimits
from stylebot.queue.payloads import TrainSettings


@dataclass(frozen=True)
class PolicySettings:
    min_train_images: int = 1
    max_train_images: int = 40
    default_steps: int = 25
    max_steps: int = 60
    default_guidance: float = 7.5
    default_size: int = 512
    min_size: int = 256
    max_size: int = 1024
    max_images_per_request: int = 4
    max_prompt_chars: int = 1000
    # Quotas over a rolling day (24 h), per user and per server or group; 0 = no limit.
    # Generation counts images, training counts styles.
    images_per_user_per_day: int = 500
    images_per_server_per_day: int = 5000
    trainings_per_user_per_day: int = 10
    trainings_per_server_per_day: int = 50
    # Rate limit: at most this many generation or training requests per user in the
    # window; the reply says how long to wait. 0 = no limit.
    requests_per_window: int = 10
    rate_window_s: int = 60
    # Style deletions and /forgetme erasures per user over a rolling day (0 = no limit):
    # each makes the queue's store rewrite its files, so nobody may ask for it endlessly.
    erasures_per_user_per_day: int = 20
    # Jobs queued or running at once, per user and per server or group (0: no limit).
    max_queued_per_user: int = 5
    max_queued_per_server: int = 50
    # Images decoded at once on the front end (uploads, /optout, /verify); more wait.
    image_work_concurrency: int = 2
    # /optout registrations per person: in all, and over a rolling day (0: no limit).
    optouts_per_user: int = 200
    optouts_per_user_per_day: int = 20
    # Words or phrases refused in prompts (case, accents and punctuation ignored).
    prompt_blocklist: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy(PolicySettings):
    base_model: str = ""
    train: TrainSettings = field(default_factory=TrainSettings)
    # Fields of `train` chosen per style from its number of images instead
    # (stylebot.bot.core.training_defaults); Settings has the same-named property.
    train_chosen_from_images: tuple[str, ...] = ()
    images: ImageLimits = field(default_factory=ImageLimits)
    # Whether workers have a captioner (the `captioner` setting): /captions auto says so
    # plainly when not, instead of queueing a job no worker can do.
    captioner_configured: bool = False
    # Whether workers have a CLIP model (`clip_model`): new images are then compared by
    # embedding too (stylebot.bot.core.embedding_duplicates).
    clip_configured: bool = False
    # What /sketch may follow: the kinds (FOLLOW_KINDS) a ControlNet is configured for.
    sketch_follows: tuple[str, ...] = ()
