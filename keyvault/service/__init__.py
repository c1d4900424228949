"""The vault service: the process that alone holds the database credentials, the unsealed KEK and the signing key.

Server side (imported only by `ifadit vault serve` and `vault init --service`): ``setup`` creates a
service-mode vault, ``seal`` (Shamir shares) and ``hsm`` (PKCS#11 wrap) keep and rebuild its KEK,
``credentials`` makes and checks login verifiers, ``state`` holds the KEK while unsealed and opens a
vault per request as the token's user, ``auth`` turns passphrases into short-lived tokens, ``app``
exposes the library over HTTP (FastAPI), ``server`` runs it (uvicorn).
Client side (httpx only, no database code): ``client.VaultClient``, ``tokenfile``, ``urls``.
Shared: ``api`` (``VaultAPI`` and its argument records), ``wire`` (JSON forms), ``errors``; ``local_api``
(``LocalAPI``, ``VaultAPI`` on an open vault) serves the CLI on a local vault and the service. This file imports nothing, so a workstation never loads the server's dependencies.
"""
