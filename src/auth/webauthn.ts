/**
 * WebAuthn (passkeys and hardware security keys) as a local factor, with
 * `@simplewebauthn/server`: registration with attestation `none` and security keys preferred
 * (seed 004: hardware keys for break-glass), assertions checked against the stored public key and
 * signature counter. Challenges are single-use: kept in the broker's state row of the user and
 * swapped out when an answer is checked, so one assertion cannot be replayed.
 */
import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from "@simplewebauthn/server";
import type { StateWrites } from "../core/ports/broker-state.js";
import type { Transactions } from "../core/ports/transactions.js";
import type { LocalFactor } from "../core/records.js";

/** Where the broker is, as browsers see it: the RP id (host name) and the page origin. */
export interface RelyingParty {
  readonly id: string;
  readonly origin: string;
  readonly name: string;
}

/** What is stored for a registered credential (its public key is not secret). */
interface StoredCredential {
  readonly id: string;
  readonly publicKey: string;
  readonly transports: string[];
}

const CHALLENGE_TTL_MS = 2 * 60_000;

export const parseCredential = (secret: string): StoredCredential => JSON.parse(secret) as StoredCredential;

export async function registrationOptions(rp: RelyingParty, user: string, existing: readonly LocalFactor[]) {
  return generateRegistrationOptions({
    rpName: rp.name,
    rpID: rp.id,
    userName: user,
    attestationType: "none",
    excludeCredentials: existing
      .filter((f) => f.kind === "webauthn" && f.confirmedAt !== null)
      .map((f) => ({ id: parseCredential(f.secret).id })),
    authenticatorSelection: { residentKey: "discouraged", userVerification: "preferred" },
    preferredAuthenticatorType: "securityKey",
  });
}

/** Check a registration answer; the credential to store, or null when it does not verify. */
export async function verifyRegistration(
  rp: RelyingParty,
  expectedChallenge: string,
  response: unknown,
): Promise<{ secret: string; counter: number } | null> {
  try {
    const r = await verifyRegistrationResponse({
      response: response as RegistrationResponseJSON,
      expectedChallenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.id,
    });
    if (!r.verified) return null;
    const c = r.registrationInfo.credential;
    const stored: StoredCredential = {
      id: c.id,
      publicKey: Buffer.from(c.publicKey).toString("base64url"),
      transports: [...(c.transports ?? [])],
    };
    return { secret: JSON.stringify(stored), counter: c.counter };
  } catch {
    return null;
  }
}

const stateKey = (user: string) => `webauthn:${user}`;

/**
 * Fewest credential ids an assertion's options list: a name with fewer keys — none, or no
 * account — is padded with decoys, so the list's length does not tell how many keys a name has
 * (up to this many) or whether it has any.
 */
export const MIN_ALLOWED_CREDENTIALS = 4;
/** Every entry offers every transport: a key's own transports would tell its id from a decoy's. */
const ANY_TRANSPORT = ["usb", "nfc", "ble", "hybrid", "internal"];

/**
 * Options for an assertion by `user`'s registered credentials; the challenge is remembered. The
 * list is padded to {@link MIN_ALLOWED_CREDENTIALS} with decoy credential ids (`decoyId`, stable
 * per name and place, unguessable without the broker's key) and sorted, so the answer does not
 * tell whether a name exists, has a key, or how many (up to that many), nor which ids are real
 * (every entry offers every transport, the browser then asks whichever authenticator is there).
 */
export async function authenticationOptions(
  rp: RelyingParty,
  store: Transactions<StateWrites>,
  user: string,
  factors: readonly LocalFactor[],
  now: number,
  decoyId: (user: string) => string,
) {
  const real = factors
    .filter((f) => f.kind === "webauthn" && f.confirmedAt !== null)
    .map((f) => {
      const c = parseCredential(f.secret);
      return { id: c.id, transports: [...ANY_TRANSPORT] };
    });
  const allow = [...real];
  for (let i = 0; allow.length < MIN_ALLOWED_CREDENTIALS; i++) {
    allow.push({ id: decoyId(i === 0 ? user : `${user}\n${i}`), transports: [...ANY_TRANSPORT] });
  }
  allow.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const options = await generateAuthenticationOptions({
    rpID: rp.id,
    allowCredentials: allow,
    userVerification: "preferred",
  });
  // Nothing is remembered for names without a key, so anonymous callers cannot fill the table.
  if (real.length === 0) return options;
  await store.transaction((tx) =>
    tx.swapState(stateKey(user), JSON.stringify({ challenge: options.challenge, at: now }), now),
  );
  return options;
}

/**
 * Check an assertion by `user`: consumes the pending challenge (used or not), checks the
 * signature and that the counter moved on. The factor used and its new counter, or null.
 */
export async function verifyAssertion(
  rp: RelyingParty,
  store: Transactions<StateWrites>,
  user: string,
  factors: readonly LocalFactor[],
  response: unknown,
  now: number,
): Promise<{ factor: LocalFactor; counter: number } | null> {
  const pending = await store.transaction((tx) => tx.swapState(stateKey(user), "", now));
  let challenge: string | null = null;
  try {
    const p = pending ? (JSON.parse(pending) as { challenge?: unknown; at?: unknown }) : null;
    if (p && typeof p.challenge === "string" && typeof p.at === "number" && now - p.at <= CHALLENGE_TTL_MS) {
      challenge = p.challenge;
    }
  } catch {
    challenge = null;
  }
  if (challenge === null) return null;
  const id = (response as { id?: unknown } | null)?.id;
  const factor = factors.find(
    (f) => f.kind === "webauthn" && f.confirmedAt !== null && parseCredential(f.secret).id === id,
  );
  if (!factor) return null;
  const c = parseCredential(factor.secret);
  try {
    const r = await verifyAuthenticationResponse({
      response: response as AuthenticationResponseJSON,
      expectedChallenge: challenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.id,
      credential: { id: c.id, publicKey: Buffer.from(c.publicKey, "base64url"), counter: factor.lastStep ?? 0 },
    });
    return r.verified ? { factor, counter: r.authenticationInfo.newCounter } : null;
  } catch {
    return null;
  }
}
