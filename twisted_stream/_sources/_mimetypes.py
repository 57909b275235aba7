"""Content types from a fixed table, identical on every host.

Python's :mod:`mimetypes` reads the host's ``/etc/mime.types`` (and the Windows registry),
so the same file would be served with different types on different machines; this table
is the only source. Text types get ``charset=utf-8``; unknown extensions get the caller's
default (``application/octet-stream`` unless told otherwise), never ``text/html``.
"""

from __future__ import annotations

DEFAULT_TYPE = "application/octet-stream"

TYPES: dict[str, str] = {
    # text and markup
    ".html": "text/html",
    ".htm": "text/html",
    ".css": "text/css",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".txt": "text/plain",
    ".text": "text/plain",
    ".log": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".rst": "text/x-rst",
    ".ics": "text/calendar",
    ".vtt": "text/vtt",
    ".xml": "application/xml",
    ".xsl": "application/xslt+xml",
    ".xhtml": "application/xhtml+xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".svg": "image/svg+xml",
    # scripts and data
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".json": "application/json",
    ".map": "application/json",
    ".jsonld": "application/ld+json",
    ".ndjson": "application/x-ndjson",
    ".geojson": "application/geo+json",
    ".webmanifest": "application/manifest+json",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".wasm": "application/wasm",
    ".pdf": "application/pdf",
    ".rtf": "application/rtf",
    ".ps": "application/postscript",
    ".eps": "application/postscript",
    # images
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".apng": "image/apng",
    ".bmp": "image/bmp",
    ".ico": "image/vnd.microsoft.icon",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".heic": "image/heic",
    # audio
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".aac": "audio/aac",
    ".m4a": "audio/mp4",
    ".mid": "audio/midi",
    ".midi": "audio/midi",
    ".weba": "audio/webm",
    # video
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".webm": "video/webm",
    ".ogv": "video/ogg",
    ".mov": "video/quicktime",
    ".avi": "video/x-msvideo",
    ".mkv": "video/x-matroska",
    ".mpeg": "video/mpeg",
    ".mpg": "video/mpeg",
    ".ts": "video/mp2t",
    ".m3u8": "application/vnd.apple.mpegurl",
    # fonts
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".eot": "application/vnd.ms-fontobject",
    # archives and binaries
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".tgz": "application/gzip",
    ".bz2": "application/x-bzip2",
    ".xz": "application/x-xz",
    ".zst": "application/zstd",
    ".tar": "application/x-tar",
    ".7z": "application/x-7z-compressed",
    ".rar": "application/vnd.rar",
    ".jar": "application/java-archive",
    ".whl": "application/zip",
    ".exe": "application/vnd.microsoft.portable-executable",
    ".bin": "application/octet-stream",
    ".iso": "application/octet-stream",
    # office documents
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xls": "application/vnd.ms-excel",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".ppt": "application/vnd.ms-powerpoint",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".odp": "application/vnd.oasis.opendocument.presentation",
    ".epub": "application/epub+zip",
}
"""Lower-case extension (with its dot) to media type, without parameters."""

_TEXTUAL_APPLICATION = frozenset(
    {
        "application/json",
        "application/ld+json",
        "application/x-ndjson",
        "application/geo+json",
        "application/manifest+json",
        "application/xml",
        "application/xslt+xml",
        "application/xhtml+xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/yaml",
        "application/toml",
        "image/svg+xml",
    }
)


def _is_textual(media_type: str) -> bool:
    """True for media types whose bodies are text that a charset applies to."""
    return media_type.startswith("text/") or media_type in _TEXTUAL_APPLICATION


def with_charset(media_type: str) -> str:
    """Add ``; charset=utf-8`` to a textual type that has no parameters yet."""
    if ";" in media_type or not _is_textual(media_type.lower()):
        return media_type
    return f"{media_type}; charset=utf-8"


def guess_type(name: str, default: str = DEFAULT_TYPE) -> str:
    """The ``Content-Type`` for a file name, from its last extension (case-insensitive).

    Unknown or missing extensions give ``default``; textual types get ``charset=utf-8``.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    dot = base.rfind(".")
    extension = base[dot:].lower() if dot > 0 else ""
    return with_charset(TYPES.get(extension, default))
