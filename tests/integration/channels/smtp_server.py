"""A real SMTP server for the email channel tests (aiosmtpd): plain, STARTTLS (required) or
implicit TLS on 127.0.0.1:PORT. Each accepted message is written to OUT_DIR/N.json with its
envelope, whether the session was encrypted, and the user that authenticated.

Usage: smtp_server.py MODE PORT OUT_DIR [CERT KEY USER PASSWORD]
"""

import email
import email.policy
import json
import os
import signal
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Recorder:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        record = {
            "subject": str(message["subject"]),
            "from": str(message["from"]),
            "to": str(message["to"]),
            "text": message.get_content(),
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            # STARTTLS sets session.ssl; an implicit TLS session shows on its transport.
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            "auth_user": session.auth_data,
        }
        temp = os.path.join(self.out_dir, f".{self.count}.json")
        with open(temp, "w") as f:
            json.dump(record, f)
        os.rename(temp, os.path.join(self.out_dir, f"{self.count}.json"))
        return "250 2.0.0 Message accepted for delivery by the test server"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode() if isinstance(auth_data.login, bytes) else auth_data.login
        secret = auth_data.password.decode() if isinstance(auth_data.password, bytes) else auth_data.password
        if login == user and secret == password:
            return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    return check


def main():
    mode, port, out_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    kwargs = {}
    if mode in ("starttls", "tls"):
        cert, key, user, password = sys.argv[4:8]
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        kwargs["authenticator"] = authenticator(user, password)
        kwargs["auth_required"] = True
        if mode == "starttls":
            kwargs["tls_context"] = context
            kwargs["require_starttls"] = True
        else:
            kwargs["ssl_context"] = context
            # aiosmtpd only counts STARTTLS as TLS for AUTH; this session is TLS from byte one.
            kwargs["auth_require_tls"] = False
    controller = Controller(Recorder(out_dir), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()


if __name__ == "__main__":
    main()
