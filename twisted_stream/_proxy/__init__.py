"""The streaming reverse proxy, :class:`~twisted_stream.ProxyResource`: its headers
(``_headers.py``, pure), where a request goes (``_target.py``), the request body sent
upstream (``_upload.py``), one proxied exchange (``_exchange.py``) and the resource."""
