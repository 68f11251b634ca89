"""Runs spdx3-validate with SPDX 3.0.1's schema, shapes and JSON-LD context read from a
local directory (SPDX_3_DIR) instead of spdx.org, which CI cannot reach. Any other URL
is refused, so nothing else is fetched. Exit status is spdx3-validate's own."""

import email.message
import io
import os
import sys
import urllib.error
import urllib.request
import urllib.response

LOCAL = os.environ["SPDX_3_DIR"]
FILES = {
    "https://spdx.org/rdf/3.0.1/spdx-context.jsonld": "spdx-context.jsonld",
    "https://spdx.org/rdf/3.0.1/spdx-model.ttl": "spdx-model.ttl",
    "https://spdx.org/schema/3.0.1/spdx-json-schema.json": "spdx-json-schema.json",
}


class Local(urllib.request.BaseHandler):
    handler_order = 100

    def _open(self, request):
        name = FILES.get(request.full_url)
        if name is None:
            raise urllib.error.URLError(f"not fetched in tests: {request.full_url}")
        with open(os.path.join(LOCAL, name), "rb") as f:
            data = f.read()
        headers = email.message.Message()
        headers["Content-Length"] = str(len(data))
        response = urllib.response.addinfourl(io.BytesIO(data), headers, request.full_url, 200)
        response.msg = "OK"
        return response

    http_open = _open
    https_open = _open


urllib.request.install_opener(urllib.request.build_opener(Local))

from spdx3_validate.main import main  # noqa: E402

sys.exit(main())
