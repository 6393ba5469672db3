"""Exception types: every failure the user can cause ends in one of these, with a message that
names the culprit (file, URL, config key) and says what to do."""


class FmdenoiseError(Exception):
    """Base class of every error the project raises on purpose."""


class ConfigError(FmdenoiseError):
    """The study configuration is invalid (the message names the key)."""


class DownloadError(FmdenoiseError):
    """A file could not be fetched or failed verification (the message names the URL)."""


class ArchiveError(FmdenoiseError):
    """An archive is corrupt or unsafe to extract (the message names the archive and member)."""


class ImageError(FmdenoiseError):
    """An image file is unreadable or not what the study expects (the message names the file)."""


class CheckpointError(FmdenoiseError):
    """A checkpoint does not load into the architecture (the message names the file and keys)."""
