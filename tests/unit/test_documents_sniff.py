"""What a document is, judged from its first bytes, and the names a folder accepts."""
import pytest

from documents import sniff
from documents.folders import content_disposition
from documents.contracts import UploadRequest
from recaudo_common.errors import InvalidInput
from recaudo_common.validation import load

DOCX_HEAD = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00[Content_Types].xml" + bytes(40) + b"word/document.xml"


@pytest.mark.parametrize("head, name, content_type", [
    (b"%PDF-1.7\n...", "contrato.pdf", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "ine.PNG", "image/png"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "foto.jpeg", "image/jpeg"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "foto.webp", "image/webp"),
    (DOCX_HEAD, "carta.docx", sniff.DOCX.content_type),
    (b"PK\x03\x04" + bytes(26) + b"[Content_Types].xml", "saldos.xlsx", sniff.XLSX.content_type),
    (sniff.OLE + bytes(100), "viejo.xls", "application/vnd.ms-excel"),
    (sniff.OLE + bytes(100), "correo.msg", "application/vnd.ms-outlook"),
    ("cuenta;saldo\n123;1 500,00\nAñadido en cp1252".encode("cp1252"), "saldos.csv", "text/plain"),
    (b"Received: from mx\r\nFrom: a@b.mx\r\nSubject: pago\r\n\r\nhola", "aviso.eml", "message/rfc822"),
    (b"%PDF-1.4", "sin-extension", "application/pdf"),
])
def test_allowed_kinds_are_recognised(head, name, content_type):
    assert sniff.kind_of(head, name).content_type == content_type


@pytest.mark.parametrize("head, name, reason", [
    (b"", "vacio.pdf", "vacío"),
    (b"MZ\x90\x00\x03", "contrato.pdf", "programas"),           # a Windows executable renamed
    (b"\x7fELF\x02\x01", "estado.pdf", "programas"),
    (b"#!/bin/sh\nrm -rf /", "notas.txt", "programas"),
    (b"%PDF-1.4", "contrato.exe", "no corresponde"),            # a real PDF, a lying name
    (b"\x89PNG\r\n\x1a\n", "foto.pdf", "no corresponde"),
    (b"PK\x03\x04" + bytes(40), "datos.zip", "ZIP"),
    (sniff.OLE + bytes(10), "raro.ppt", "no corresponde"),
    (bytes(range(256)), "binario.txt", "no admitido"),
    (b"hola, esto es texto", "carta.eml", "no corresponde"),     # not a message
])
def test_everything_else_is_refused_with_a_reason(head, name, reason):
    with pytest.raises(sniff.Refused, match=reason):
        sniff.kind_of(head, name)


@pytest.mark.parametrize("name", ["../x.pdf", "a/b.pdf", "a\\b.pdf", "tab\there.pdf",
                                  "nul\x00.pdf", "rtl\u202egpj.exe", "..", " . "])
def test_names_with_paths_or_control_characters_are_refused(name):
    with pytest.raises(InvalidInput) as refused:
        load(UploadRequest(), {"debtor_id": 1, "filename": name, "size": 10})
    assert "filename" in refused.value.fields


def test_a_name_is_kept_as_typed_and_given_back_safely():
    data = load(UploadRequest(), {"debtor_id": 1, "filename": "  Estado de cuenta ñ (2).pdf ",
                                  "size": 10, "md5": "A" * 32})
    assert data["filename"] == "Estado de cuenta ñ (2).pdf" and data["md5"] == "a" * 32
    header = content_disposition('Año "2026".pdf', inline=False)
    assert header.startswith('attachment; filename="A_o _2026_.pdf"')
    assert header.endswith("filename*=UTF-8''A%C3%B1o%20%222026%22.pdf")
