"""ADF → text and quoted-reply stripping, table-driven (pure functions, no HTTP)."""

from __future__ import annotations

from typing import Any

import pytest

from momentos.connectors.adf import adf_to_text, clean_comment, strip_quoted_reply, text_to_adf


def doc(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "doc", "version": 1, "content": list(content)}


def para(*inline: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": list(inline)}


def text(value: str, **marks: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": value}
    if marks:
        node["marks"] = [{"type": k} for k in marks]
    return node


ADF_CASES = [
    pytest.param(doc(para(text("Hello "), text("world", strong=True))), "Hello world", id="marks"),
    pytest.param(doc(para(text("a")), para(text("b"))), "a\nb", id="paragraphs"),
    pytest.param(doc(para(text("line 1"), {"type": "hardBreak"}, text("line 2"))), "line 1\nline 2", id="hard-break"),
    pytest.param(
        doc({"type": "heading", "attrs": {"level": 2}, "content": [text("Impact")]}, para(text("All users"))),
        "Impact\nAll users", id="heading",
    ),
    pytest.param(
        doc({"type": "bulletList", "content": [
            {"type": "listItem", "content": [para(text("one"))]},
            {"type": "listItem", "content": [para(text("two"))]},
        ]}),
        "- one\n- two", id="bullet-list",
    ),
    pytest.param(
        doc({"type": "orderedList", "attrs": {"order": 3}, "content": [
            {"type": "listItem", "content": [para(text("three"))]},
            {"type": "listItem", "content": [para(text("four"))]},
        ]}),
        "3. three\n4. four", id="ordered-list",
    ),
    pytest.param(
        doc(para(text("Thanks "), {"type": "mention", "attrs": {"id": "abc", "text": "@Ana López"}},
                 text(" "), {"type": "emoji", "attrs": {"shortName": ":smile:", "text": "😄"}})),
        "Thanks @Ana López 😄", id="mention-emoji",
    ),
    pytest.param(
        doc({"type": "codeBlock", "attrs": {"language": "sql"}, "content": [text("SELECT 1;\nSELECT 2;")]}),
        "SELECT 1;\nSELECT 2;", id="code-block",
    ),
    pytest.param(
        doc({"type": "table", "content": [
            {"type": "tableRow", "content": [
                {"type": "tableHeader", "content": [para(text("System"))]},
                {"type": "tableHeader", "content": [para(text("State"))]},
            ]},
            {"type": "tableRow", "content": [
                {"type": "tableCell", "content": [para(text("SAP"))]},
                {"type": "tableCell", "content": [para(text("down"))]},
            ]},
        ]}),
        "System | State\nSAP | down", id="table",
    ),
    pytest.param(
        doc({"type": "panel", "attrs": {"panelType": "warning"}, "content": [para(text("Maintenance tonight"))]}),
        "Maintenance tonight", id="panel",
    ),
    pytest.param(
        doc({"type": "mysteryBlock", "content": [para(text("still readable"))]}),
        "still readable", id="unknown-node-keeps-text",
    ),
    pytest.param(
        doc(para(text("see "), {"type": "inlineCard", "attrs": {"url": "https://x.example/1"}})),
        "see https://x.example/1", id="inline-card",
    ),
    pytest.param(
        doc(para(text("new text")), {"type": "blockquote", "content": [para(text("old text"))]}),
        "new text\n> old text", id="blockquote-marked",
    ),
    pytest.param(doc({"type": "rule"}, para(text("after rule"))), "after rule", id="rule"),
    pytest.param(
        doc({"type": "bulletList", "content": [
            {"type": "listItem", "content": [
                para(text("VPN")),
                {"type": "orderedList", "content": [
                    {"type": "listItem", "content": [para(text("reinstall"))]},
                    {"type": "listItem", "content": [para(text("reboot"))]},
                ]},
            ]},
            {"type": "listItem", "content": [para(text("Mail"))]},
        ]}),
        "- VPN\n  1. reinstall\n  2. reboot\n- Mail", id="nested-lists",
    ),
    pytest.param(
        doc(para(text("run "), text("ipconfig /flushdns", code=True), text(" please"))),
        "run ipconfig /flushdns please", id="inline-code-mark",
    ),
    pytest.param(
        doc(para({"type": "mention", "attrs": {"id": "5b10ac8d82e05b22cc7d4ef5", "text": "Ana"}},
                 text(" "), {"type": "emoji", "attrs": {"shortName": ":thumbsup:"}})),
        "@Ana :thumbsup:", id="mention-without-at-emoji-shortname-only",
    ),
    pytest.param(
        doc({"type": "panel", "attrs": {"panelType": "error"}, "content": [
            para(text("Outage")),
            {"type": "codeBlock", "content": [text("ERR 503")]},
            {"type": "bulletList", "content": [{"type": "listItem", "content": [para(text("SAP"))]}]},
        ]}),
        "Outage\nERR 503\n- SAP", id="panel-with-code-and-list",
    ),
    pytest.param(
        doc({"type": "expand", "attrs": {"title": "Logs"}, "content": [para(text("line a"))]}),
        "Logs\nline a", id="expand-title",
    ),
    pytest.param(
        doc({"type": "table", "content": [
            {"type": "tableRow", "content": [
                {"type": "tableCell", "content": [para(text("two")), para(text("paragraphs"))]},
                {"type": "tableCell", "content": [para({"type": "status", "attrs": {"text": "DONE"}})]},
            ]},
        ]}),
        "two paragraphs | DONE", id="table-cell-paragraphs-and-status",
    ),
    pytest.param(
        doc(para(text("due "), {"type": "date", "attrs": {"timestamp": "1767225600000"}}),
            {"type": "mediaSingle", "content": [{"type": "media", "attrs": {"id": "x", "type": "file"}}]}),
        "due 2026-01-01", id="date-and-media-dropped",
    ),
    pytest.param(None, "", id="none"),
    pytest.param("plain v2 string", "plain v2 string", id="plain-string"),
]


@pytest.mark.parametrize(("node", "expected"), ADF_CASES)
def test_adf_to_text(node: Any, expected: str) -> None:
    assert adf_to_text(node) == expected


REPLY_CASES = [
    pytest.param(
        "It works now, thanks!\n\nOn Mon, 5 Jan 2026 at 10:02, IT Desk <desk@acme.com> wrote:\n> Please try again",
        "It works now, thanks!", id="en-on-wrote",
    ),
    pytest.param(
        "It works now.\n\nOn Mon, 5 Jan 2026 at 10:02, IT Desk <desk@acme.com>\nwrote:\n> Please try again",
        "It works now.", id="en-on-wrote-wrapped",
    ),
    pytest.param(
        "Ya funciona, gracias.\n\nEl lun, 5 ene 2026 a las 10:02, Soporte IT (<soporte@acme.com>) escribió:\n> Pruebe de nuevo",
        "Ya funciona, gracias.", id="es-el-escribio",
    ),
    pytest.param("Still broken.\n> previous message\n> more", "Still broken.", id="quoted-lines"),
    pytest.param("Thanks.\n-- \nAna López\nFinance", "Thanks.", id="sig-dashes"),
    pytest.param("On my way to fix it.\n\nSent from my iPhone", "On my way to fix it.", id="sent-from-my"),
    pytest.param("Perfecto.\n\nEnviado desde mi móvil", "Perfecto.", id="enviado-desde-mi"),
    pytest.param("Sigue sin funcionar.\n\nSaludos,\nMarta Gil\nCompras", "Sigue sin funcionar.", id="es-saludos"),
    pytest.param("Still slow.\n\nRegards,\nJames Smith\nSales", "Still slow.", id="en-regards"),
    pytest.param(
        "Done.\n\nFrom: IT Desk <desk@acme.com>\nSent: Monday, January 5, 2026 10:02\nSubject: RE: VPN",
        "Done.", id="outlook-header",
    ),
    pytest.param(
        "From: the finance team we still need the report.", "From: the finance team we still need the report.",
        id="from-in-text-kept",
    ),
    pytest.param(
        "Listo.\n\nDe: Soporte IT <soporte@acme.com>\nEnviado: lunes, 5 de enero de 2026 10:02\nAsunto: RE: VPN",
        "Listo.", id="es-outlook-header",
    ),
    pytest.param(
        "Gracias.\n\n-----Mensaje original-----\nDe: Soporte\nNo funciona nada, fatal.", "Gracias.",
        id="es-mensaje-original",
    ),
    pytest.param(
        "Thanks!\n\n-----Original Message-----\nFrom: IT\nStill broken, terrible.", "Thanks!",
        id="en-original-message",
    ),
    pytest.param(
        "Ya va.\n\nEl lun, 5 ene 2026 a las 10:02, Soporte IT <soporte@acme.com>\nescribió:\n> ¿Sigue el error?",
        "Ya va.", id="es-el-escribio-wrapped",
    ),
    pytest.param("Works.\n\nSent from Outlook for iOS", "Works.", id="sent-from-outlook"),
    pytest.param("Funciona.\n\nObtener Outlook para Android", "Funciona.", id="obtener-outlook"),
    pytest.param("Todo bien.\n\nAtentamente,\nLuis Pérez\nDirector de Compras", "Todo bien.",
                 id="es-atentamente"),
    pytest.param("Fixed, thanks.\n\nBest regards,\nJohn\n+1 555 0100", "Fixed, thanks.", id="en-best-regards"),
    pytest.param(
        "Regards,\n" + "\n".join(f"line {i} of a long note that is real content" for i in range(8)),
        "Regards,\n" + "\n".join(f"line {i} of a long note that is real content" for i in range(8)),
        id="long-block-after-regards-kept",
    ),
]


@pytest.mark.parametrize(("raw", "expected"), REPLY_CASES)
def test_strip_quoted_reply(raw: str, expected: str) -> None:
    assert strip_quoted_reply(raw) == expected


def test_clean_comment_reads_adf_and_drops_the_quote() -> None:
    body = doc(
        para(text("No funciona todavía.")),
        para(text("El mar, 6 ene 2026, Soporte escribió:")),
        {"type": "blockquote", "content": [para(text("¿Puede probar ahora?"))]},
    )
    assert clean_comment(body) == "No funciona todavía."


def test_text_to_adf_round_trip() -> None:
    source = "level: fair\nreasons: slow\n\nsecond paragraph"
    assert adf_to_text(text_to_adf(source)) == source.replace("\n\n", "\n")
