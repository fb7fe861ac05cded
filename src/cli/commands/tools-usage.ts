/**
 * The help text of `authority tools`' registry and signature subcommands,
 * shared by the tools command and the module that runs them.
 * @module
 */
/** The registry and signature subcommands (their code loads only when one runs). */
export const REGISTRY_USAGE = `  authority tools push <tool.wasm> oci://HOST/REPO:TAG [registry options]
  authority tools pull oci://HOST/REPO[:TAG|@sha256:HEX] [-o FILE] [--key PUB]... [registry options]
  authority tools sign <tool.wasm|oci://...> --key KEY [registry options]
  authority tools verify <tool.wasm|oci://...> (--key PUB... | --policy FILE) [registry options]
  authority tools keygen NAME [--type ed25519|ecdsa-p256]

push      push a component as a Wasm OCI artifact (config application/vnd.wasm.config.v0+json,
          layer application/wasm), with the signatures in <tool.wasm>.sig attached as referrers.
pull      fetch a component (every digest checked) into the data folder's cache, and its
          signatures; -o writes it to FILE and the signatures to FILE.sig. With --key, a valid
          signature by one of the keys is required (exit 1 otherwise).
sign      sign the component's digest (a DSSE in-toto statement in a Sigstore bundle): a file's
          signature goes to <tool.wasm>.sig, a reference's is pushed as a referrer (or under the
          sha256-<hex> tag on registries without the referrers API).
verify    check the signatures against public keys (--key, or every key in the policy's tools.trust).
keygen    write a signing key pair NAME.key (private, 0600) and NAME.pub, and print the key id.

registry options:
  --plain-http         talk HTTP, not HTTPS (a registry on loopback or one you know to be insecure)
  --registry-config F  docker-style config.json with "auths" (default $AUTHORITY_REGISTRY_CONFIG,
                       $DOCKER_CONFIG/config.json, ~/.docker/config.json); or set
                       AUTHORITY_REGISTRY_USERNAME and AUTHORITY_REGISTRY_PASSWORD
  --data-dir DIR       state folder (the pull cache lives in <data-dir>/oci)
  --json               print exactly one JSON document on stdout`;
