"""Atlassian Document Format (ADF) → clean plain text, and the reverse for writing.

Jira Cloud's REST API v3 sends descriptions, comments and paragraph custom fields as ADF JSON
documents; Data Center (API v2) sends plain/wiki text. Enrichment reads sentiment from what the
requester *wrote*, so comment text is also cleaned of quoted e-mail replies and signatures
(``clean_comment``): JSM turns e-mails into comments, and a reply quoting three earlier messages
would otherwise count the old text again.

ADF structure reference: https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/
(block nodes: paragraph, heading, bulletList, orderedList, listItem, blockquote, codeBlock, panel,
table/tableRow/tableHeader/tableCell, rule, mediaSingle, expand; inline nodes: text, hardBreak,
mention, emoji, inlineCard, date, status).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

__all__ = ["adf_to_text", "body_text", "clean_comment", "strip_quoted_reply", "text_to_adf"]

#: Block nodes whose children are laid out one block per line.
_CONTAINER_BLOCKS = frozenset(
    {"doc", "panel", "expand", "nestedExpand", "layoutSection", "layoutColumn", "bodiedExtension"}
)


def adf_to_text(node: Any) -> str:
    """Render an ADF node (usually a ``doc``) as readable plain text.

    Paragraphs and other blocks become lines; list items get ``- `` / ``1. `` prefixes; table
    cells are joined with `` | `` one row per line; quoted blocks get ``> `` prefixes so the
    reply stripper can recognise them. Unknown node types fall back to their text children,
    so a new Atlassian node type degrades to its words instead of vanishing.
    """
    if node is None:
        return ""
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "\n".join(filter(None, (adf_to_text(n) for n in node)))
    if not isinstance(node, dict):
        return str(node)
    lines = _block(node)
    text = "\n".join(lines)
    # Collapse runs of blank lines left by empty paragraphs.
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _type(node: Any) -> str:
    """A node's type; "" when the node is not a dict or its type is not a string."""
    kind = node.get("type", "") if isinstance(node, dict) else ""
    return kind if isinstance(kind, str) else ""


def _attrs(node: dict[str, Any]) -> dict[str, Any]:
    attrs = node.get("attrs")
    return attrs if isinstance(attrs, dict) else {}


def _content(node: dict[str, Any]) -> list[Any]:
    """A node's children; malformed content (a string, a number, a dict) counts as none, so a
    broken node degrades to nothing instead of failing the whole item."""
    content = node.get("content")
    return content if isinstance(content, list) else []


def _block(node: dict[str, Any]) -> list[str]:
    """Lines for a block-level node."""
    kind = _type(node)
    content = _content(node)
    if kind in ("paragraph", "heading"):
        return _inline(content).split("\n") if content else [""]
    if kind in _CONTAINER_BLOCKS:
        lines: list[str] = []
        title = _attrs(node).get("title")
        if title:
            lines.append(str(title))
        for child in content:
            lines.extend(_child_lines(child))
        return lines
    if kind in ("bulletList", "orderedList", "taskList", "decisionList"):
        try:
            start = int(_attrs(node).get("order", 1) or 1)
        except (TypeError, ValueError, OverflowError):
            start = 1
        lines = []
        for index, item in enumerate(content):
            prefix = f"{start + index}. " if kind == "orderedList" else "- "
            item_lines = _child_lines(item) or [""]
            lines.append(prefix + item_lines[0])
            lines.extend("  " + line for line in item_lines[1:])
        return lines
    if kind in ("listItem", "taskItem", "decisionItem"):
        lines = []
        for child in content:
            lines.extend(_child_lines(child))
        return lines
    if kind == "blockquote":
        lines = []
        for child in content:
            lines.extend(_child_lines(child))
        return ["> " + line if line else ">" for line in lines]
    if kind == "codeBlock":
        return _inline(content).split("\n")
    if kind == "table":
        return [_table_row(row) for row in content if isinstance(row, dict)]
    if kind == "tableRow":
        return [_table_row(node)]
    if kind in ("rule", "mediaSingle", "mediaGroup", "media", "extension"):
        return []
    if kind in _INLINE_TYPES:
        text = _inline([node])
        return text.split("\n") if text else []
    # Unknown block: keep whatever text its children carry.
    if content:
        if all(_type(c) in _INLINE_TYPES for c in content):
            return _inline(content).split("\n")
        lines = []
        for child in content:
            lines.extend(_child_lines(child))
        return lines
    return [str(node["text"])] if node.get("text") else []


def _child_lines(child: Any) -> list[str]:
    if not isinstance(child, dict):
        return [str(child)] if child else []
    if _type(child) in _INLINE_TYPES:
        return _inline([child]).split("\n")
    return _block(child)


def _table_row(row: dict[str, Any]) -> str:
    cells = []
    for cell in _content(row):
        if isinstance(cell, dict):
            cell_lines = []
            for child in _content(cell):
                cell_lines.extend(_child_lines(child))
            cells.append(" ".join(line.strip() for line in cell_lines if line.strip()))
    return " | ".join(cells)


_INLINE_TYPES = frozenset(
    {"text", "hardBreak", "mention", "emoji", "inlineCard", "date", "status", "placeholder",
     "inlineExtension", "mediaInline"}
)


def _inline(nodes: list[Any]) -> str:
    parts: list[str] = []
    for node in nodes:
        if not isinstance(node, dict):
            continue
        kind = _type(node)
        attrs = _attrs(node)
        if kind == "text":
            parts.append(str(node.get("text", "")))
        elif kind == "hardBreak":
            parts.append("\n")
        elif kind == "mention":
            name = str(attrs.get("text") or attrs.get("id") or "")
            parts.append(name if name.startswith("@") or not name else "@" + name)
        elif kind == "emoji":
            parts.append(str(attrs.get("text") or attrs.get("shortName") or ""))
        elif kind == "inlineCard":
            parts.append(str(attrs.get("url") or ""))
        elif kind == "status":
            parts.append(str(attrs.get("text") or ""))
        elif kind == "date":
            parts.append(_date_text(attrs.get("timestamp")))
        elif kind == "placeholder":
            continue  # editor hint text, never typed by anyone
        elif _content(node):
            # Unknown inline or block nested inside a paragraph: its text children.
            inner = _content(node)
            if any(isinstance(c, dict) and _type(c) not in _INLINE_TYPES for c in inner):
                parts.append("\n".join(line for child in inner for line in _child_lines(child)))
            else:
                parts.append(_inline(inner))
        elif "text" in node:
            parts.append(str(node["text"]))
    return "".join(parts)


def _date_text(timestamp: Any) -> str:
    try:
        return datetime.fromtimestamp(int(timestamp) / 1000, tz=UTC).strftime("%Y-%m-%d")
    except (TypeError, ValueError, OverflowError, OSError):  # not a number, or out of range
        return ""


def text_to_adf(text: str) -> dict[str, Any]:
    """A plain text as an ADF document: blank lines split paragraphs, newlines are hard breaks.

    Used to write the signals paragraph field through API v3, which accepts only ADF for
    multi-line text fields.
    """
    paragraphs: list[dict[str, Any]] = []
    for block in re.split(r"\n\s*\n", text or ""):
        if not block.strip():
            continue
        content: list[dict[str, Any]] = []
        for index, line in enumerate(block.split("\n")):
            if index:
                content.append({"type": "hardBreak"})
            if line:
                content.append({"type": "text", "text": line})
        paragraphs.append({"type": "paragraph", "content": content})
    return {"type": "doc", "version": 1, "content": paragraphs}


def body_text(value: Any) -> str:
    """Text of a field value that is ADF (API v3) or a plain string (API v2)."""
    if isinstance(value, dict) and value.get("type") == "doc":
        return adf_to_text(value)
    if value is None:
        return ""
    return str(value)


# --- quoted replies and signatures -----------------------------------------------------------

#: A line that starts a quoted earlier message; everything from it on is old text.
_REPLY_HEADERS = [
    re.compile(r"^\s*On\b.{0,300}\bwrote:\s*$", re.IGNORECASE),
    re.compile(r"^\s*El\b.{0,300}\bescribi[óo]:\s*$", re.IGNORECASE),
    re.compile(r"^\s*-{2,}\s*(Original Message|Mensaje original)\s*-{2,}\s*$", re.IGNORECASE),
    re.compile(r"^\s*_{10,}\s*$"),  # Outlook's separator above the quoted header block
]
#: Outlook's quoted header: "From: …" followed within a few lines by "Sent: …" / "Enviado: …".
_OUTLOOK_FROM = re.compile(r"^\s*(From|De)\s*:\s.+$", re.IGNORECASE)
_OUTLOOK_SENT = re.compile(r"^\s*(Sent|Enviado|Date|Fecha)\s*:\s.+$", re.IGNORECASE)
#: "On Mon, 5 Jan 2026 at 10:00, Ana <ana@x.com>" wrapped before "wrote:" by mail clients.
_REPLY_HEADER_START = re.compile(r"^\s*(On|El)\s.{0,300}$", re.IGNORECASE)
_REPLY_HEADER_END = re.compile(r"^\s*.{0,200}\b(wrote|escribi[óo]):\s*$", re.IGNORECASE)

#: Lines that start a signature; the rest of the message is the signature.
_SIGNATURE_STARTS = [
    re.compile(r"^--\s?$"),  # RFC 3676 signature separator "-- "
    re.compile(r"^\s*Sent from my\b", re.IGNORECASE),
    re.compile(r"^\s*Enviado desde mi\b", re.IGNORECASE),
    re.compile(r"^\s*Get Outlook for\b", re.IGNORECASE),
    re.compile(r"^\s*Obtener Outlook para\b", re.IGNORECASE),
    re.compile(r"^\s*(Sent from|Enviado desde) Outlook\b", re.IGNORECASE),
]
#: Sign-offs that start a trailing block (the name, title, phone lines that follow).
_SIGN_OFFS = re.compile(
    r"^\s*(best regards|kind regards|regards|thanks and regards|cheers|saludos|un saludo|"
    r"saludos cordiales|atentamente|cordialmente|gracias y saludos)\s*[,.!]?\s*$",
    re.IGNORECASE,
)
#: A sign-off block is only cut when it is short: a long block after "Regards," is content.
_MAX_SIGNOFF_TAIL_LINES = 5


def strip_quoted_reply(text: str) -> str:
    """Keep only the new text of an e-mail-style message.

    Cuts at the first reply header ("On … wrote:", "El … escribió:", "-----Original
    Message-----", an Outlook "From:" block), drops ``>`` quoted lines, and removes a trailing
    signature ("-- ", "Sent from my …", "Enviado desde mi …", or a short block that starts with
    "Regards,"/"Saludos,").
    """
    if not text:
        return ""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        if index and any(p.match(line) for p in _REPLY_HEADERS):
            break
        if (
            index
            and _OUTLOOK_FROM.match(line)
            and any(_OUTLOOK_SENT.match(n) for n in lines[index + 1 : index + 4])
        ):
            break
        if (
            index
            and _REPLY_HEADER_START.match(line)
            and index + 1 < len(lines)
            and _REPLY_HEADER_END.match(lines[index + 1])
            and not line.rstrip().endswith((".", "!", "?"))
        ):
            break
        if any(p.match(line) for p in _SIGNATURE_STARTS):
            break
        kept.append(line)
    kept = [line for line in kept if not line.lstrip().startswith(">")]
    # A short trailing block that starts with a sign-off is the signature.
    for index in range(len(kept) - 1, -1, -1):
        if _SIGN_OFFS.match(kept[index]):
            tail = [line for line in kept[index + 1 :] if line.strip()]
            if len(tail) <= _MAX_SIGNOFF_TAIL_LINES and all(len(line) <= 80 for line in tail):
                kept = kept[:index]
            break
        if len(kept) - index > _MAX_SIGNOFF_TAIL_LINES + 1:
            break
    result = "\n".join(kept)
    return re.sub(r"\n{3,}", "\n\n", result).strip()


def clean_comment(body: Any) -> str:
    """The new, human-written text of a comment body (ADF or plain string)."""
    return strip_quoted_reply(body_text(body))
