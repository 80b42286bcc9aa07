/**
 * Settings from flags and environment variables: values, precedence (flag, OCI_TFSTATE_*, the
 * seed's TF_BACKEND_ORAS_*, default), and one clear message per bad setting.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Config } from "../../src/config/config.ts";
import { describeConfig } from "../../src/config/config.ts";
import { helpText } from "../../src/config/help.ts";
import { ConfigError, loadConfig } from "../../src/config/load.ts";
import { envName, OPTIONS } from "../../src/config/options.ts";

const MiB = 1024 * 1024;

function load(argv: string[], env: Record<string, string> = {}, files: Record<string, string> = {}): Config {
  const r = loadConfig(argv, env, {
    readFile: (p) => {
      const content = files[p];
      if (content === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: "ENOENT" });
      return content;
    },
  });
  assert.equal(r.kind, "config");
  return r.config;
}

function fails(argv: string[], env: Record<string, string>, message: RegExp): void {
  assert.throws(
    () => loadConfig(argv, env, { readFile: () => "" }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.match(err.message, message);
      assert.doesNotMatch(err.message, /\n/, "one line");
      return true;
    },
  );
}

describe("defaults", () => {
  test("a bare start serves an OCI layout under ./data on 127.0.0.1:8080", () => {
    const c = load([]);
    assert.deepEqual(c.listen, { host: "127.0.0.1", port: 8080 });
    assert.equal(c.repository, "oci-layout:./data");
    assert.equal(c.plainHTTP, false);
    assert.equal(c.compression, "none");
    assert.equal(c.lockTTLMs, 0);
    assert.equal(c.maxVersions, 0);
    assert.equal(c.maxStateSize, 256 * MiB);
    assert.deepEqual(c.retry, { maxAttempts: 3, initialBackoffMs: 1000, maxBackoffMs: 30_000 });
    assert.equal(c.maxMessageBytes, 4 * MiB);
    assert.equal(c.watchPollIntervalMs, 2000);
    assert.equal(c.maxLockWaitMs, 600_000);
    assert.equal(c.shutdownGraceMs, 10_000);
    assert.equal(c.logLevel, "info");
    assert.equal(c.tls, undefined);
    assert.equal(c.registryUsername, undefined);
    assert.equal(c.telemetry, false);
  });

  test("--help and --version are answered before any other setting is checked", () => {
    assert.equal(loadConfig(["--help", "--lock-ttl", "nonsense"], {}).kind, "help");
    assert.equal(loadConfig(["-h"], {}).kind, "help");
    assert.equal(loadConfig(["--version"], {}).kind, "version");
  });
});

describe("values", () => {
  test("flags in their own syntax", () => {
    const c = load([
      "--listen=:9090",
      "--repository",
      "ghcr.io/acme/tfstate",
      "--plain-http",
      "--insecure",
      "--compression",
      "GZIP",
      "--lock-ttl",
      "1h30m",
      "--max-versions",
      "10",
      "--max-state-size",
      "512MiB",
      "--rate-limit",
      "2.5",
      "--rate-burst",
      "4",
      "--retry-max-attempts",
      "5",
      "--retry-initial-backoff",
      "250ms",
      "--retry-max-backoff",
      "1m",
      "--watch-poll-interval",
      "500ms",
      "--max-lock-wait",
      "30s",
      "--max-message-size",
      "16MB",
      "--shutdown-grace",
      "0",
      "--log-level",
      "debug",
    ]);
    assert.deepEqual(c.listen, { host: "0.0.0.0", port: 9090 });
    assert.equal(c.repository, "ghcr.io/acme/tfstate");
    assert.equal(c.plainHTTP, true);
    assert.equal(c.insecure, true);
    assert.equal(c.compression, "gzip");
    assert.equal(c.lockTTLMs, 5_400_000);
    assert.equal(c.maxVersions, 10);
    assert.equal(c.maxStateSize, 512 * MiB);
    assert.equal(c.rateLimit, 2.5);
    assert.equal(c.rateBurst, 4);
    assert.deepEqual(c.retry, { maxAttempts: 5, initialBackoffMs: 250, maxBackoffMs: 60_000 });
    assert.equal(c.watchPollIntervalMs, 500);
    assert.equal(c.maxLockWaitMs, 30_000);
    assert.equal(c.maxMessageBytes, 16_000_000);
    assert.equal(c.shutdownGraceMs, 0);
    assert.equal(c.logLevel, "debug");
  });

  test("IPv6 listen addresses and TLS files", () => {
    const c = load(["--listen", "[::1]:8443", "--tls-cert", "/c.pem", "--tls-key", "/k.pem"]);
    assert.deepEqual(c.listen, { host: "::1", port: 8443 });
    assert.deepEqual(c.tls, { certFile: "/c.pem", keyFile: "/k.pem" });
  });

  test("registry credentials from flags, variables or a password file, never in the logged config", () => {
    const fromFile = load(
      ["--registry-username", "bot", "--registry-password-file", "/run/secrets/pw"],
      {},
      {
        "/run/secrets/pw": "s3cret-from-file\n",
      },
    );
    assert.equal(fromFile.registryPassword, "s3cret-from-file");
    const fromEnv = load([], {
      OCI_TFSTATE_REGISTRY_USERNAME: "bot",
      OCI_TFSTATE_REGISTRY_PASSWORD: "s3cret-env",
    });
    assert.equal(fromEnv.registryUsername, "bot");
    assert.equal(fromEnv.registryPassword, "s3cret-env");
    const logged = JSON.stringify(describeConfig(fromEnv));
    assert.doesNotMatch(logged, /s3cret/);
    assert.doesNotMatch(logged, /"bot"/);
    assert.match(logged, /"registryAuth":"username\/password"/);
  });

  test("the OpenTelemetry SDK is wanted when any OTEL_* variable is set, unless it is disabled", () => {
    assert.equal(load([], { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }).telemetry, true);
    assert.equal(load([], { OTEL_SERVICE_NAME: "tfstate" }).telemetry, true);
    assert.equal(load([], { OTEL_SERVICE_NAME: "tfstate", OTEL_SDK_DISABLED: "true" }).telemetry, false);
    assert.equal(load([], { OTEL_TRACES_EXPORTER: "" }).telemetry, false);
  });

  test("an unknown OCI_TFSTATE_* variable is reported as a warning", () => {
    const r = loadConfig([], { OCI_TFSTATE_LISTN: "x" });
    assert.equal(r.kind, "config");
    assert.deepEqual(r.warnings, ["unknown environment variable OCI_TFSTATE_LISTN"]);
  });
});

describe("precedence", () => {
  test("flag over OCI_TFSTATE_* over TF_BACKEND_ORAS_* over the default", () => {
    const seed = { TF_BACKEND_ORAS_LOCK_TTL: "30" };
    const ours = { ...seed, OCI_TFSTATE_LOCK_TTL: "2m" };
    assert.equal(load([]).lockTTLMs, 0);
    assert.equal(load([], seed).lockTTLMs, 30_000, "the seed's variable is whole seconds");
    assert.equal(load([], ours).lockTTLMs, 120_000);
    assert.equal(load(["--lock-ttl", "5s"], ours).lockTTLMs, 5000);
  });

  test("the seed's variables in the seed's units", () => {
    const c = load([], {
      TF_BACKEND_ORAS_REPOSITORY: "registry.example.com:5000/team/state",
      TF_BACKEND_ORAS_RETRY_MAX: "4",
      TF_BACKEND_ORAS_RETRY_WAIT_MIN: "2",
      TF_BACKEND_ORAS_RETRY_WAIT_MAX: "20",
      TF_BACKEND_ORAS_RATE_LIMIT: "5",
      TF_BACKEND_ORAS_RATE_LIMIT_BURST: "10",
      TF_BACKEND_ORAS_MAX_STATE_SIZE: "1048576",
    });
    assert.equal(c.repository, "registry.example.com:5000/team/state");
    assert.deepEqual(
      c.retry,
      { maxAttempts: 5, initialBackoffMs: 2000, maxBackoffMs: 20_000 },
      "retries + 1 attempts",
    );
    assert.equal(c.rateLimit, 5);
    assert.equal(c.rateBurst, 10);
    assert.equal(c.maxStateSize, MiB);
    assert.equal(
      load([], { TF_BACKEND_ORAS_MAX_STATE_SIZE: "0" }).maxStateSize,
      256 * MiB,
      "0 means the default",
    );
  });

  test("a boolean variable can be turned off again by its --no- flag; an empty variable counts as unset", () => {
    assert.equal(load([], { OCI_TFSTATE_PLAIN_HTTP: "true" }).plainHTTP, true);
    assert.equal(load(["--no-plain-http"], { OCI_TFSTATE_PLAIN_HTTP: "true" }).plainHTTP, false);
    assert.equal(load([], { OCI_TFSTATE_LISTEN: "" }).listen.port, 8080);
  });
});

describe("bad settings", () => {
  const cases: Array<[string, string[], Record<string, string>, RegExp]> = [
    ["bad duration", ["--lock-ttl", "10"], {}, /^invalid --lock-ttl "10": expected a duration with a unit/],
    [
      "bad duration in a variable",
      [],
      { OCI_TFSTATE_LOCK_TTL: "soon" },
      /^invalid OCI_TFSTATE_LOCK_TTL "soon"/,
    ],
    [
      "bad seed value",
      [],
      { TF_BACKEND_ORAS_LOCK_TTL: "30s" },
      /^invalid TF_BACKEND_ORAS_LOCK_TTL "30s": expected a whole number/,
    ],
    ["bad size", ["--max-state-size", "lots"], {}, /^invalid --max-state-size "lots": expected a size/],
    ["bad listen", ["--listen", "8080"], {}, /^invalid --listen "8080": expected host:port/],
    ["port out of range", ["--listen", ":70000"], {}, /port must be between 0 and 65535/],
    ["bad compression", ["--compression", "zstd"], {}, /expected one of none, gzip/],
    [
      "bad boolean variable",
      [],
      { OCI_TFSTATE_INSECURE: "maybe" },
      /^invalid OCI_TFSTATE_INSECURE "maybe": expected true or false/,
    ],
    ["zero attempts", ["--retry-max-attempts", "0"], {}, /^invalid --retry-max-attempts "0"/],
    [
      "backoffs the wrong way round",
      ["--retry-initial-backoff", "1m", "--retry-max-backoff", "1s"],
      {},
      /retry-max-backoff/,
    ],
    [
      "tiny messages",
      ["--max-message-size", "1MiB"],
      {},
      /^invalid --max-message-size "1MiB": must be at least 2MiB/,
    ],
    ["zero poll interval", ["--watch-poll-interval", "0"], {}, /^invalid --watch-poll-interval "0"/],
    [
      "a URL as repository",
      ["--repository", "https://ghcr.io/a/b"],
      {},
      /^invalid --repository .*without a scheme/,
    ],
    [
      "a repository without a path",
      [],
      { TF_BACKEND_ORAS_REPOSITORY: "ghcr.io" },
      /^invalid TF_BACKEND_ORAS_REPOSITORY "ghcr.io"/,
    ],
    ["an empty layout", ["--repository", "oci-layout:"], {}, /oci-layout: needs a directory/],
    ["half a TLS pair", ["--tls-cert", "/c.pem"], {}, /^--tls-cert needs --tls-key$/],
    [
      "a password without a user",
      [],
      { OCI_TFSTATE_REGISTRY_PASSWORD: "pw" },
      /registry password is set but --registry-username is not/,
    ],
    ["a user without a password", ["--registry-username", "bot"], {}, /no registry password/],
    [
      "two password sources",
      ["--registry-username", "u", "--registry-password", "p", "--registry-password-file", "/f"],
      {},
      /not both/,
    ],
    ["an unknown flag", ["--colour"], {}, /^unknown flag --colour \(see --help\)$/],
    ["a flag without its value", ["--listen"], {}, /^--listen needs a value$/],
    ["a value for a switch", ["--plain-http=yes"], {}, /^--plain-http takes no value/],
    ["a stray argument", ["serve"], {}, /^unexpected argument serve/],
  ];
  for (const [name, argv, env, message] of cases) {
    test(name, () => fails(argv, env, message));
  }

  test("an unreadable password file names the flag, and a password is never echoed", () => {
    assert.throws(
      () => load(["--registry-username", "u", "--registry-password-file", "/nope"]),
      /cannot read --registry-password-file "\/nope": ENOENT/,
    );
  });
});

test("--help lists every flag with its variable, the seed's variable and its default", () => {
  const help = helpText();
  for (const o of OPTIONS) {
    assert.match(help, new RegExp(`--${o.flag}\\b`));
    assert.ok(help.includes(envName(o.flag)), envName(o.flag));
    if (o.seed) assert.ok(help.includes(o.seed.name), o.seed.name);
  }
  assert.match(help, /default 127\.0\.0\.1:8080/);
  assert.match(help, /OTEL_EXPORTER_OTLP_ENDPOINT/);
});
