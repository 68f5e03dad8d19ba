"""Secret shapes from public detector rule sets, each with the rule it comes from, made with random bodies.

Sources (each rule's own regular expression decides the shape):
- detect-secrets 1.5.0 plugins, https://github.com/Yelp/detect-secrets/tree/v1.5.0/detect_secrets/plugins
- gitleaks rules, https://github.com/gitleaks/gitleaks/blob/b58d3f102cf3a2c84cb7f923d05c25c9b1aed84b/config/gitleaks.toml
- trufflehog detectors, https://github.com/trufflesecurity/trufflehog/tree/3ab759fef4bb5935d4fe9ac68b503d05346b8364/pkg/detectors
- the issue's own four (an ML server's environment): a storage connection string, a chat webhook, an
  error-tracking DSN, a password in a URL's query string.

Each shape is (source, make) where make(random) returns (text to plant, the secret that must not leak):
for a URL or a connection string the secret is its password or key, for a token the whole token.
"""

from __future__ import annotations

import math
import random
import string

ALNUM = string.ascii_letters + string.digits
LOWER = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"
BECH32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"


def _r(rnd: random.Random, chars: str, n: int) -> str:
    return "".join(rnd.choice(chars) for _ in range(n))


def _random_enough(rnd: random.Random, chars: str, n: int, limit: float) -> str:
    """A random string the entropy rule calls a secret: detect-secrets' high-entropy plugins flag only strings above
    their limit (4.5 for base64, 3.0 for hex), and about one random 40-character base64 string in twenty falls under
    it (4.39 seen). Below the limit is outside what that rule detects, a limit of entropy detection itself."""
    while True:
        text = _r(rnd, chars, n)
        if -sum(text.count(c) / n * math.log2(text.count(c) / n) for c in set(text)) > limit:
            return text


def _whole(text: str) -> tuple[str, str]:
    return text, text


def _inside(template: str, secret: str) -> tuple[str, str]:
    return template.format(secret), secret


DETECT_SECRETS = "detect-secrets plugins/"
GITLEAKS = "gitleaks rule "
TRUFFLEHOG = "trufflehog pkg/detectors/"
SHAPES = {
    "aws access key": (DETECT_SECRETS + "aws.py", lambda r: _whole("AKIA" + _r(r, string.ascii_uppercase + string.digits, 16))),
    "azure storage connection string": (DETECT_SECRETS + "azure_storage_key.py; the issue", lambda r: _inside(
        "DefaultEndpointsProtocol=https;AccountName=mlstore;AccountKey={};EndpointSuffix=core.windows.net", _r(r, B64, 86) + "==")),
    "basic auth url": (DETECT_SECRETS + "basic_auth.py", lambda r: _inside("https://deploy:{}@git.acme.example/models.git", _r(r, ALNUM, 18))),
    "discord bot token": (DETECT_SECRETS + "discord.py", lambda r: _whole(
        "M" + _r(r, URLSAFE, 23) + "." + _r(r, URLSAFE, 6) + "." + _r(r, URLSAFE, 27))),
    "github token": (DETECT_SECRETS + "github_token.py", lambda r: _whole("ghp_" + _r(r, ALNUM, 36))),
    "gitlab token": (DETECT_SECRETS + "gitlab_token.py", lambda r: _whole("glpat-" + _r(r, ALNUM, 20))),
    "jwt": (DETECT_SECRETS + "jwt.py", lambda r: _whole(
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ" + _r(r, URLSAFE, 40) + "." + _r(r, URLSAFE, 43))),
    "mailchimp key": (DETECT_SECRETS + "mailchimp.py", lambda r: _whole(_r(r, LOWER, 32) + "-us14")),
    "npm auth token": (DETECT_SECRETS + "npm.py", lambda r: _inside("//registry.npmjs.org/:_authToken={}", "npm_" + _r(r, ALNUM, 36))),
    "openai key": (DETECT_SECRETS + "openai.py", lambda r: _whole("sk-proj-" + _r(r, ALNUM, 20) + "T3BlbkFJ" + _r(r, ALNUM, 20))),
    "private key": (DETECT_SECRETS + "private_key.py", lambda r: _inside(
        "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----", "MIIEpAIBAAKCAQEA" + _r(r, B64, 48))),
    "pypi token": (DETECT_SECRETS + "pypi_token.py", lambda r: _whole("pypi-AgEIcHlwaS5vcmc" + _r(r, URLSAFE, 80))),
    "sendgrid key": (DETECT_SECRETS + "sendgrid.py", lambda r: _whole("SG." + _r(r, URLSAFE, 22) + "." + _r(r, URLSAFE, 43))),
    "slack bot token": (DETECT_SECRETS + "slack.py", lambda r: _whole(
        "xoxb-" + _r(r, string.digits, 12) + "-" + _r(r, string.digits, 13) + "-" + _r(r, LOWER, 24))),
    "slack webhook": (DETECT_SECRETS + "slack.py; the issue", lambda r: _whole(
        "https://hooks.slack.com/services/T" + _r(r, string.ascii_uppercase + string.digits, 10) + "/B"
        + _r(r, string.ascii_uppercase + string.digits, 10) + "/" + _r(r, ALNUM, 24))),
    "square oauth secret": (DETECT_SECRETS + "square_oauth.py", lambda r: _whole("sq0csp-" + _r(r, URLSAFE, 43))),
    "stripe key": (DETECT_SECRETS + "stripe.py", lambda r: _whole("sk_live_" + _r(r, ALNUM, 24))),
    "telegram bot token": (DETECT_SECRETS + "telegram_token.py", lambda r: _whole(_r(r, string.digits, 10) + ":" + _r(r, URLSAFE, 35))),
    "twilio key": (DETECT_SECRETS + "twilio.py", lambda r: _whole("SK" + _r(r, LOWER, 32))),
    "artifactory token": (DETECT_SECRETS + "artifactory.py", lambda r: _whole("AKCp8" + _r(r, ALNUM, 64))),
    "keyword": (DETECT_SECRETS + "keyword.py", lambda r: _inside("db_password: {}", _r(r, ALNUM, 14))),
    "quoted base64": (DETECT_SECRETS + "high_entropy_strings.py (Base64)", lambda r: _inside('"{}"', _random_enough(r, B64, 40, 4.5))),
    "quoted hex": (DETECT_SECRETS + "high_entropy_strings.py (Hex)", lambda r: _inside("'{}'", _random_enough(r, HEX, 40, 3.0))),
    "gcp api key": (GITLEAKS + "gcp-api-key", lambda r: _whole("AIza" + _r(r, URLSAFE, 35))),
    "digitalocean token": (GITLEAKS + "digitalocean-pat", lambda r: _whole("dop_v1_" + _r(r, HEX, 64))),
    "databricks token": (GITLEAKS + "databricks-api-token", lambda r: _whole("dapi" + _r(r, HEX, 32))),
    "shopify token": (GITLEAKS + "shopify-access-token", lambda r: _whole("shpat_" + _r(r, HEX, 32))),
    "age secret key": (GITLEAKS + "age-secret-key", lambda r: _whole("AGE-SECRET-KEY-1" + _r(r, BECH32, 58))),
    "grafana token": (GITLEAKS + "grafana-service-account-token", lambda r: _whole("glsa_" + _r(r, ALNUM, 32) + "_" + _r(r, HEX, 8))),
    "linear key": (GITLEAKS + "linear-api-key", lambda r: _whole("lin_api_" + _r(r, LOWER, 40))),
    "doppler token": (GITLEAKS + "doppler-api-token", lambda r: _whole("dp.pt." + _r(r, LOWER, 43))),
    "anthropic key": (GITLEAKS + "anthropic-api-key", lambda r: _whole("sk-ant-api03-" + _r(r, URLSAFE, 93) + "AA")),
    "vault token": (GITLEAKS + "vault-service-token", lambda r: _whole("hvs." + _r(r, URLSAFE, 90))),
    "huggingface token": (GITLEAKS + "huggingface-access-token", lambda r: _whole("hf_" + _r(r, string.ascii_letters, 34))),
    "teams webhook": (GITLEAKS + "microsoft-teams-webhook", lambda r: _whole(
        "https://acme.webhook.office.com/webhookb2/" + _uuid(r) + "@" + _uuid(r) + "/IncomingWebhook/" + _r(r, LOWER, 32) + "/" + _uuid(r))),
    "pulumi token": (GITLEAKS + "pulumi-api-token", lambda r: _whole("pul-" + _r(r, HEX, 40))),
    "postman key": (GITLEAKS + "postman-api-token", lambda r: _whole("PMAK-" + _r(r, HEX, 24) + "-" + _r(r, HEX, 34))),
    "postgres url": (TRUFFLEHOG + "postgres", lambda r: _inside("postgresql://trainer:{}@db.acme.example:5432/runs", _r(r, ALNUM, 20))),
    "redis url": (TRUFFLEHOG + "redis", lambda r: _inside("redis://default:{}@cache.acme.example:6379/0", _r(r, ALNUM, 24))),
    "mongodb url": (TRUFFLEHOG + "mongodb", lambda r: _inside(
        "mongodb+srv://ml:{}@cluster0.ab1cd.mongodb.net/runs?retryWrites=true", _r(r, ALNUM, 20))),
    "ftp url": (TRUFFLEHOG + "ftp", lambda r: _inside("ftp://mirror:{}@ftp.acme.example/datasets", _r(r, ALNUM, 16))),
    "discord webhook": (TRUFFLEHOG + "discordwebhook; the issue", lambda r: _whole(
        "https://discord.com/api/webhooks/" + _r(r, string.digits, 19) + "/" + _r(r, URLSAFE, 68))),
    "replicate token": (TRUFFLEHOG + "replicate", lambda r: _whole("r8_" + _r(r, ALNUM, 37))),
    "groq key": (TRUFFLEHOG + "groq", lambda r: _whole("gsk_" + _r(r, ALNUM, 52))),
    "wandb key": (TRUFFLEHOG + "weightsandbiases", lambda r: _whole(_r(r, HEX, 40))),
    "sentry dsn": ("the issue (Sentry's DSN, https://docs.sentry.io/concepts/key-terms/dsn-explainer/)", lambda r: _inside(
        "https://{}@o450123.ingest.sentry.io/5512345", _r(r, HEX, 32))),
    "password in url query": ("the issue", lambda r: _inside("https://mlflow.acme.example/api/2.0/runs?user=ci&password={}&x=1", _r(r, ALNUM, 16))),
}


def _uuid(rnd: random.Random) -> str:
    return "-".join(_r(rnd, HEX, n) for n in (8, 4, 4, 4, 12))


def planted(seed: int) -> dict[str, tuple[str, str]]:
    """Every shape made once from `seed`: name -> (text, secret)."""
    rnd = random.Random(seed)
    return {name: make(rnd) for name, (_, make) in SHAPES.items()}
