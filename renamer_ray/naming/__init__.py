"""Pure naming rules: sanitising, templates, de-duplication, formats. No I/O."""

from renamer_ray.naming.dedupe import GROUP_KEY_CHARS, NoRoom, assign_unique, group_key, with_suffix
from renamer_ray.naming.formats import (
    IMAGE_EXTENSIONS,
    SUPPORTED_FORMATS,
    UnsupportedFormat,
    content_type_for,
    extension_for,
    file_name,
)
from renamer_ray.naming.rules import (
    CASES,
    FALLBACK_STEM,
    MAX_CHARS,
    MAX_WORDS,
    is_valid_stem,
    load_blocklist,
    sanitize_stem,
)
from renamer_ray.naming.style import DEFAULT_STYLE, NamingStyle, StyleError
from renamer_ray.naming.template import (
    ALLOWED_FIELDS,
    DEFAULT_TEMPLATE,
    NameTemplate,
    TemplateError,
)

__all__ = [
    "ALLOWED_FIELDS",
    "CASES",
    "DEFAULT_STYLE",
    "DEFAULT_TEMPLATE",
    "FALLBACK_STEM",
    "GROUP_KEY_CHARS",
    "IMAGE_EXTENSIONS",
    "MAX_CHARS",
    "MAX_WORDS",
    "SUPPORTED_FORMATS",
    "NameTemplate",
    "NamingStyle",
    "NoRoom",
    "StyleError",
    "TemplateError",
    "UnsupportedFormat",
    "assign_unique",
    "content_type_for",
    "extension_for",
    "file_name",
    "group_key",
    "is_valid_stem",
    "load_blocklist",
    "sanitize_stem",
    "with_suffix",
]
