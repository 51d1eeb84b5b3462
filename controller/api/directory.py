"""``POST /freeswitch/directory``: FreeSWITCH's mod_xml_curl asks for browser users (HTTP basic auth).

Facts from FreeSWITCH v1.10.12 (sources cited by path):

* mod_xml_curl (``src/mod/xml_int/mod_xml_curl/mod_xml_curl.c`` ``xml_url_fetch``) POSTs
  ``application/x-www-form-urlencoded``: ``hostname``, ``section``, ``tag_name``, ``key_name``,
  ``key_value``, then every header of the lookup's params event (``switch_event_build_param_string``).
  Credentials (``gateway-credentials`` ``user:password``) go as basic auth by default (``CURLAUTH_BASIC``).
  Only an HTTP 200 whose body parses as XML is used; anything else is treated as no answer.
* A user lookup (``src/switch_xml.c`` ``switch_xml_locate_user``) adds ``user`` and ``domain`` to the params
  and locates ``section=directory``, ``tag_name=domain``, ``key_name=name``, ``key_value=<domain>``. sofia's
  digest check (``mod_sofia/sofia_reg.c`` ``sofia_reg_parse_auth``) adds ``action=sip_auth``,
  ``sip_auth_username``, ``sip_auth_realm``... and reads the user's ``password`` param.
* ``switch_xml_locate`` skips a binding whose answer is ``<section name="result"><result status="not
  found"/>`` and then looks in the static XML. A domain answered *without* the user is not skipped: the
  user lookup would fail. Hence only browser users get an answer; everything else is "not found".

Errors: 401 with ``WWW-Authenticate: Basic`` (house error body) when the credentials are missing or wrong.
This route is for FreeSWITCH, not API clients: it is outside the OpenAPI document (like ``/janus/events``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from xml.sax.saxutils import quoteattr

from aiohttp import web

from controller.api.janus_events import BasicAuth
from controller.api.ports import BrowserIdentities
from controller.api.spec import ApiError
from controller.janus.browsers import BrowserUser

__all__ = ["DIAL_STRING", "NOT_FOUND", "add_directory_routes", "directory_answer"]

NOT_FOUND: Final = (
    '<document type="freeswitch/xml">\n'
    '  <section name="result">\n'
    '    <result status="not found"/>\n'
    "  </section>\n"
    "</document>\n"
)
DIAL_STRING: Final = (
    "{^^:sip_invite_domain=${dialed_domain}:presence_id=${dialed_user}@${dialed_domain}}"
    "${sofia_contact(*/${dialed_user}@${dialed_domain})}"
)
"""The domain's dial-string, as the rendered directory has it (directory/switchyard.xml)."""
_REALM: Final = "switchyard-freeswitch-directory"
_MAX_BODY: Final = 64 * 1024


def directory_answer(form: Mapping[str, str], users: BrowserIdentities, context: str) -> str:
    """The XML answer to one mod_xml_curl lookup: the browser user (dialling in ``context``), or
    ``NOT_FOUND``."""
    if form.get("section") != "directory" or form.get("tag_name", "domain") != "domain":
        return NOT_FOUND
    domain = form.get("domain") or form.get("key_value", "")
    user = users.lookup(form.get("user", ""))
    if user is None or domain != users.domain:
        return NOT_FOUND
    return _user_document(domain, user, context)


def _user_document(domain: str, user: BrowserUser, context: str) -> str:
    name = quoteattr(user.display_name or user.username)
    number = user.caller_id_number or user.username
    return (
        '<document type="freeswitch/xml">\n'
        '  <section name="directory">\n'
        f"    <domain name={quoteattr(domain)}>\n"
        f'      <params><param name="dial-string" value={quoteattr(DIAL_STRING)}/></params>\n'
        "      <users>\n"
        f"        <user id={quoteattr(user.username)}>\n"
        f'          <params><param name="password" value={quoteattr(user.password)}/></params>\n'
        "          <variables>\n"
        f'            <variable name="user_context" value={quoteattr(context)}/>\n'
        f'            <variable name="effective_caller_id_name" value={name}/>\n'
        f'            <variable name="effective_caller_id_number" value={quoteattr(number)}/>\n'
        "          </variables>\n"
        "        </user>\n"
        "      </users>\n"
        "    </domain>\n"
        "  </section>\n"
        "</document>\n"
    )


def add_directory_routes(
    app: web.Application, users: BrowserIdentities, user: str, password: str, context: str
) -> None:
    """Add ``POST /freeswitch/directory`` to ``app``: basic auth ``user``/``password``; the users dial
    in the dialplan ``context``."""
    auth = BasicAuth(user, password, _REALM)

    async def directory(request: web.Request) -> web.Response:
        if (refused := auth.refusal(request)) is not None:
            return refused
        if request.content_length is not None and request.content_length > _MAX_BODY:
            return ApiError(413, f"body larger than {_MAX_BODY} bytes", "body").response()
        form = await request.post()
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        return web.Response(text=directory_answer(fields, users, context), content_type="text/xml")

    app.router.add_post("/freeswitch/directory", directory)
