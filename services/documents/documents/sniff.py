"""What a file really is, judged from its first bytes, never from its name.

Only the kinds a collections folder needs are allowed: PDF, images, Word, Excel, plain
text (CSV included) and email files. A file must be one of them by its bytes, and its
name's ending must agree with what the bytes are (``contrato.pdf`` holding a Windows
executable, or a PNG, is refused), so what is stored opens as what it claims to be.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

#: how much of the object is read to judge it
SNIFF_BYTES = 8192

ZIP = b"PK\x03\x04"
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .doc, .xls and Outlook's .msg
EXECUTABLE_MAGIC = (b"MZ", b"\x7fELF", b"\xca\xfe\xba\xbe", b"\xcf\xfa\xed\xfe",
                    b"\xce\xfa\xed\xfe", b"#!")
EMAIL_HEADERS = (b"from:", b"to:", b"subject:", b"date:", b"received:", b"return-path:",
                 b"message-id:", b"mime-version:", b"delivered-to:", b"x-")


@dataclass(frozen=True)
class Kind:
    content_type: str
    #: name endings that may hold it
    suffixes: tuple[str, ...]
    #: a browser may show it inline (preview)
    previewable: bool = False


PDF = Kind("application/pdf", (".pdf",), True)
PNG = Kind("image/png", (".png",), True)
JPEG = Kind("image/jpeg", (".jpg", ".jpeg"), True)
GIF = Kind("image/gif", (".gif",), True)
WEBP = Kind("image/webp", (".webp",), True)
TIFF = Kind("image/tiff", (".tif", ".tiff"))
DOCX = Kind("application/vnd.openxmlformats-officedocument.wordprocessingml.document", (".docx",))
XLSX = Kind("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", (".xlsx",))
DOC = Kind("application/msword", (".doc",))
XLS = Kind("application/vnd.ms-excel", (".xls",))
MSG = Kind("application/vnd.ms-outlook", (".msg",))
EML = Kind("message/rfc822", (".eml",))
TEXT = Kind("text/plain", (".txt", ".csv", ".log"))

ALLOWED = (PDF, PNG, JPEG, GIF, WEBP, TIFF, DOCX, XLSX, DOC, XLS, MSG, EML, TEXT)
ALLOWED_SUFFIXES = tuple(sorted({s for kind in ALLOWED for s in kind.suffixes}))


class Refused(ValueError):
    """Why the bytes may not be stored (a sentence for the uploader)."""


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    sample = head[:-4] if len(head) == SNIFF_BYTES else head  # a cut multibyte character
    for encoding in ("utf-8", "cp1252"):
        try:
            decoded = sample.decode(encoding)
        except UnicodeDecodeError:
            continue
        controls = sum(1 for c in decoded if ord(c) < 32 and c not in "\t\r\n\f")
        return controls == 0
    return False


def _looks_like_email(head: bytes) -> bool:
    """An RFC 822 message starts with a header line."""
    return head.lstrip().lower().startswith(EMAIL_HEADERS)


def _office_zip(head: bytes, name: str) -> Kind | None:
    """An Office Open XML file is a ZIP whose first entries name its parts."""
    if b"[Content_Types].xml" not in head and b"_rels/" not in head \
            and b"word/" not in head and b"xl/" not in head and b"docProps/" not in head:
        return None
    if b"word/" in head:
        return DOCX
    if b"xl/" in head:
        return XLSX
    # the part names are further in: trust the ending, which must be docx or xlsx
    return {".docx": DOCX, ".xlsx": XLSX}.get(PurePosixPath(name.lower()).suffix)


def kind_of(head: bytes, name: str) -> Kind:
    """The allowed kind of a file whose first bytes are ``head``, or ``Refused``."""
    if not head:
        raise Refused("El archivo está vacío")
    if head.startswith(EXECUTABLE_MAGIC):
        raise Refused("Los programas y scripts no se admiten")
    suffix = PurePosixPath(name.lower()).suffix
    if head.startswith(b"%PDF-"):
        kind = PDF
    elif head.startswith(b"\x89PNG\r\n\x1a\n"):
        kind = PNG
    elif head.startswith(b"\xff\xd8\xff"):
        kind = JPEG
    elif head.startswith((b"GIF87a", b"GIF89a")):
        kind = GIF
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        kind = WEBP
    elif head.startswith((b"II*\x00", b"MM\x00*")):
        kind = TIFF
    elif head.startswith(ZIP):
        kind = _office_zip(head, name)
        if kind is None:
            raise Refused("Solo se admiten archivos ZIP de Word o Excel")
    elif head.startswith(OLE):
        kind = {".doc": DOC, ".xls": XLS, ".msg": MSG}.get(suffix)
        if kind is None:
            raise Refused("Documento de Office antiguo con una extensión que no corresponde")
    elif _is_text(head):
        kind = EML if suffix == ".eml" and _looks_like_email(head) else TEXT
    else:
        raise Refused("Tipo de archivo no admitido: se aceptan PDF, imágenes, Word, Excel, "
                      "texto y correos")
    if suffix and suffix not in kind.suffixes:
        raise Refused(f"El contenido es {kind.content_type}, no corresponde a la extensión {suffix}")
    return kind
