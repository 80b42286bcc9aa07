/**
 * Why a presented credential was not accepted. The reason goes to the debug log only; the client
 * hears "the credentials were not accepted" and nothing more (a caller probing tokens learns
 * nothing from the answer). Reasons never contain the credential, not even a prefix.
 */
export class CredentialRefused extends Error {
  override readonly name = "CredentialRefused";
}
