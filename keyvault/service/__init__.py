"""The vault service: the process that alone holds the database credentials, the unsealed KEK and the signing key.

Server side (FastAPI, imported only by ``ifadit vault serve``): ``setup`` creates a service-mode vault,
``seal`` and ``hsm`` keep and rebuild its KEK, ``state`` holds it while unsealed, ``auth`` turns
passphrases into short-lived tokens, ``app`` exposes the vault library over HTTP, ``server`` runs it.
Client side (httpx only, no database code): ``client.VaultClient`` and ``tokenfile``. ``api`` is the
one set of operations both sides share (``VaultAPI``), with ``LocalAPI`` running it on an open vault.
This file imports nothing, so a workstation never loads the server's dependencies.
"""
