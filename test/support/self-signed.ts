/** A throwaway self-signed certificate (EC P-256, one day) made with the openssl CLI, for TLS tests. */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Writes `certFile` and `keyFile`; `san` like `DNS:localhost,IP:127.0.0.1` (omitted: none). */
export async function selfSignedCert(opts: {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cn: string;
  readonly san?: string;
}): Promise<void> {
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-days",
    "1",
    "-subj",
    `/CN=${opts.cn}`,
    ...(opts.san ? ["-addext", `subjectAltName=${opts.san}`] : []),
    "-keyout",
    opts.keyFile,
    "-out",
    opts.certFile,
  ]);
}
