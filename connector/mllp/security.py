"""TLS context and peer allow-list for the MLLP listener (settings.mllp)."""

from __future__ import annotations

import ipaddress
import ssl

from connector.settings import MllpSettings


def server_ssl_context(settings: MllpSettings) -> ssl.SSLContext | None:
    """None without a certificate (plain MLLP). With ``tls_client_auth`` optional/required, client certificates
    are verified against ``tls_client_cafile`` (required: a client without one fails the handshake)."""
    if not settings.tls_certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_certfile, settings.tls_keyfile)
    if settings.tls_client_cafile:
        context.load_verify_locations(settings.tls_client_cafile)
    context.verify_mode = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
                           "required": ssl.CERT_REQUIRED}[settings.tls_client_auth]
    return context


class PeerFilter:
    """Allow-list of IP networks; an empty list allows every peer."""

    def __init__(self, peers: list[str]) -> None:
        self.networks = [ipaddress.ip_network(p, strict=False) for p in peers]

    def allows(self, address: str | None) -> bool:
        if not self.networks:
            return True
        if address is None:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self.networks)
