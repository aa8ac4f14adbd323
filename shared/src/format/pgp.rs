//! OpenPGP encryption of delivered files (`*.gpg`) to a customer's public key, and decryption for
//! the loader.
//!
//! [`RecipientKey`] parses a customer's public key and [`RecipientKey::check`]s that it can be
//! used; [`PgpEncryptor`] turns a file's bytes into an OpenPGP message as they come
//! ([`PgpEncryptor::push`] / [`PgpEncryptor::finish`]) with bounded memory; [`decrypt_file`] opens
//! such a file, or one `gpg --encrypt` made, with a secret key.
//!
//! What is written (RFC 4880, the profile gpg 2.2 and every OpenPGP tool read): one v3 PKESK
//! packet (a fresh AES-256 session key encrypted to the recipient's encryption key by rpgp, RSA
//! or ECDH Curve25519), then one SEIPD v1 packet (AES-256 CFB with the SHA-1 modification detection
//! code) holding one uncompressed binary literal data packet, both with partial body lengths. The
//! packet framing is done here; AES, CFB, SHA-1, RSA and ECDH come from rpgp and RustCrypto.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes::Aes256;
use cfb_mode::BufEncryptor;
use cfb_mode::cipher::KeyIvInit;
use pgp::composed::{
    DecryptionOptions, Deserializable, Esk, Message, PlainSessionKey, SignedPublicKey, SignedSecretKey, TheRing,
};
use pgp::crypto::public_key::PublicKeyAlgorithm;
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::packet::{PacketTrait, PublicKeyEncryptedSessionKey, RevocationCode, Signature, SignatureType, SubpacketData};
use pgp::types::{
    DecryptionKey, EcdhPublicParams, EskType, KeyDetails, KeyVersion, Password, PkeskVersion, PublicParams,
    Seipdv1ReadMode, Tag,
};
use rand_core::{OsRng, RngCore};
use rsa::traits::PublicKeyParts;
use sha1::{Digest, Sha1};

/// log2 of the partial body length of both packets written: 64 KiB pieces.
const CHUNK_LOG2: u8 = 16;
/// Plaintext handled per round inside [`PgpEncryptor::push`]: bounds its scratch buffer.
const PUSH_PIECE: usize = 1 << 20;
/// Literal data body header: binary (`b`), empty file name, date 0.
const LITERAL_HEADER: [u8; 6] = [b'b', 0, 0, 0, 0, 0];
/// Packet tags (RFC 4880 section 4.3).
const TAG_LITERAL: u8 = 11;
const TAG_SEIPD: u8 = 18;
/// Modification detection code packet header: tag 19, new format, length 20.
const MDC_HEADER: [u8; 2] = [0xD3, 0x14];
/// Keys and signatures made up to this far after `now` count as made (the customer's clock may run ahead).
const CLOCK_SKEW: u64 = 3600;
/// Read buffer of [`decrypt_file`].
const DECRYPT_BUFFER: usize = 256 << 10;

/// What can go wrong parsing a key, encrypting or decrypting. Messages never include key material.
#[derive(Debug, thiserror::Error)]
pub enum PgpError {
    /// The bytes are not one OpenPGP public key.
    #[error("not a usable OpenPGP public key: {0}")]
    InvalidKey(String),
    /// The key parsed but cannot be encrypted to now; the message names the problem and the fix.
    #[error("{0}")]
    Unusable(String),
    /// The secret key given to decrypt is unreadable, locked, or not a recipient of the file.
    #[error("{0}")]
    SecretKey(String),
    /// The encrypted file is malformed, truncated, or was modified (integrity check failed).
    #[error("{0}")]
    Corrupt(String),
    /// The crypto library failed while encrypting.
    #[error("encryption failed: {0}")]
    Encrypt(String),
    /// Reading or writing a local file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// A customer's OpenPGP public key (transferable public key) that delivered files are encrypted to.
#[derive(Clone)]
pub struct RecipientKey {
    key: SignedPublicKey,
}

impl fmt::Debug for RecipientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RecipientKey").field(&self.fingerprint()).finish()
    }
}

/// What [`RecipientKey::check`] found: the key and the (sub)key files will be encrypted to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// Primary key fingerprint, uppercase hex (as `gpg --with-colons` prints it).
    pub fingerprint: String,
    /// Fingerprint of the (sub)key files are encrypted to, uppercase hex.
    pub encryption_fingerprint: String,
    /// Algorithm of that (sub)key: `RSA`, `ECDH cv25519` or `X25519`.
    pub algorithm: String,
    /// Its size in bits (RSA modulus; 255 for Curve25519, as gpg shows).
    pub bits: Option<u32>,
    /// When encryption to this key stops being possible (the earlier of primary and subkey expiry).
    pub expires: Option<SystemTime>,
    /// User IDs with a valid, unrevoked self-signature.
    pub user_ids: Vec<String>,
}

/// Which key of the certificate encrypts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Primary,
    Subkey(usize),
}

/// An encryption-capable (sub)key and why it cannot be used, if it cannot.
struct Candidate {
    target: Target,
    created: u32,
    expires: Option<u64>,
    fingerprint: String,
    algorithm: String,
    bits: Option<u32>,
    /// What stops its use, and whether renewing the key (a new expiry) fixes it.
    problem: Option<(String, Fix)>,
}

/// What the customer has to do about an unusable encryption (sub)key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fix {
    /// Set a new expiry date and export again.
    Renew,
    /// Make or add another encryption (sub)key.
    NewKey,
}

impl RecipientKey {
    /// Parses one public key, ASCII-armored or binary. Validity is checked by [`RecipientKey::check`].
    pub fn parse(text: &[u8]) -> Result<RecipientKey, PgpError> {
        const EXPORT: &str = "ask the customer for the ASCII-armored public key (`gpg --armor --export FINGERPRINT`)";
        let text = text.trim_ascii_start();
        if contains(text, b"PRIVATE KEY BLOCK") || text.first().is_some_and(|b| is_secret_key_tag(*b)) {
            return Err(PgpError::InvalidKey(format!(
                "this is a secret (private) key, which must never be shared: {EXPORT}, and have the customer \
                 treat the secret key as compromised"
            )));
        }
        let (keys, _) =
            SignedPublicKey::from_reader_many(text).map_err(|e| PgpError::InvalidKey(format!("{e}: {EXPORT}")))?;
        let mut found = Vec::new();
        for key in keys {
            found.push(key.map_err(|e| PgpError::InvalidKey(format!("{e}: {EXPORT}")))?);
        }
        match found.len() {
            0 => Err(PgpError::InvalidKey(format!("no public key found: {EXPORT}"))),
            1 => Ok(RecipientKey { key: found.remove(0) }),
            n => {
                let fprs: Vec<String> = found.iter().map(|k| format!("{:X}", k.fingerprint())).collect();
                Err(PgpError::InvalidKey(format!(
                    "the text holds {n} public keys ({}): export exactly one (`gpg --armor --export FINGERPRINT`)",
                    fprs.join(", ")
                )))
            }
        }
    }

    /// Primary key fingerprint, uppercase hex (what `gpg --with-colons` prints in its `fpr` line).
    pub fn fingerprint(&self) -> String {
        format!("{:X}", self.key.fingerprint())
    }

    /// Checks that files can be encrypted to this key at `now`: self-signatures valid, not revoked or
    /// expired, with an encryption-capable (sub)key that is RSA of 2048 bits or more or Curve25519.
    pub fn check(&self, now: SystemTime) -> Result<KeyInfo, PgpError> {
        self.select(now).map(|(_, info)| info)
    }

    /// Picks the (sub)key to encrypt to at `now`: the newest usable one, as gpg does.
    fn select(&self, now: SystemTime) -> Result<(Target, KeyInfo), PgpError> {
        let now = unix_secs(now);
        let primary = &self.key.primary_key;
        let fpr = self.fingerprint();
        if primary.version() != KeyVersion::V4 {
            return Err(PgpError::Unusable(format!(
                "the key {fpr} is an OpenPGP {:?} key; only v4 keys (what gpg makes) are supported: ask the \
                 customer for a v4 key (`gpg --quick-gen-key 'Name <email>' rsa3072 encr never`)",
                primary.version()
            )));
        }
        let renew = format!(
            "ask the customer for a renewed key (`gpg --quick-set-expire {fpr} 2y` and `gpg --quick-set-expire \
             {fpr} 2y '*'`, then export it again)"
        );
        if primary.created_at().as_secs() as u64 > now + CLOCK_SKEW {
            return Err(PgpError::Unusable(format!(
                "the key {fpr} was created in the future ({}): check the clocks, or ask the customer for another key",
                utc_date(primary.created_at().as_secs() as u64)
            )));
        }

        // Revocation of the whole key.
        for sig in &self.key.details.revocation_signatures {
            if sig.typ() == Some(SignatureType::KeyRevocation)
                && in_effect(sig, now)
                && may_be_self_sig(sig, primary)
                && sig.verify_key(primary).is_ok()
            {
                return Err(PgpError::Unusable(format!(
                    "the key {fpr} was revoked{}: ask the customer for a new key",
                    reason(sig)
                )));
            }
        }

        // Self-signatures: user IDs, the primary key's flags and expiry.
        let mut user_ids = Vec::new();
        let mut self_sigs: Vec<(&Signature, bool)> = Vec::new();
        for user in &self.key.details.users {
            let valid = |s: &&Signature| {
                in_effect(s, now)
                    && may_be_self_sig(s, primary)
                    && s.verify_certification(primary, Tag::UserId, &user.id).is_ok()
            };
            let revoked =
                user.signatures.iter().filter(|s| s.typ() == Some(SignatureType::CertRevocation)).any(|s| valid(&s));
            let newest =
                user.signatures.iter().filter(|s| is_user_certification(s)).filter(valid).max_by_key(|s| created(s));
            if let Some(sig) = newest
                && !revoked
            {
                user_ids.push(String::from_utf8_lossy(user.id.id()).into_owned());
                self_sigs.push((sig, sig.is_primary()));
            }
        }
        for sig in &self.key.details.direct_signatures {
            if sig.typ() == Some(SignatureType::Key)
                && in_effect(sig, now)
                && may_be_self_sig(sig, primary)
                && sig.verify_key(primary).is_ok()
            {
                self_sigs.push((sig, false));
            }
        }
        // The primary user ID's newest self-signature rules, else the newest of all.
        let Some(&(self_sig, _)) = self_sigs.iter().max_by_key(|(s, is_primary)| (*is_primary, created(s))) else {
            return Err(PgpError::Unusable(format!(
                "the key {fpr} has no valid self-signed user ID (it may be damaged or incomplete): ask the \
                 customer to export it again (`gpg --armor --export {fpr}`)"
            )));
        };
        let primary_expires = expiry(primary.created_at().as_secs(), self_sig);
        if let Some(t) = primary_expires
            && t <= now
        {
            return Err(PgpError::Unusable(format!("the key {fpr} expired on {}: {renew}", utc_date(t))));
        }

        let mut candidates = Vec::new();
        if can_encrypt(self_sig, primary.algorithm()) {
            candidates.push(candidate(Target::Primary, primary, primary_expires, None, now));
        }
        for (i, sub) in self.key.public_subkeys.iter().enumerate() {
            let binding = |s: &&Signature| {
                in_effect(s, now) && may_be_self_sig(s, primary) && s.verify_subkey_binding(primary, &sub.key).is_ok()
            };
            let Some(bind) = sub
                .signatures
                .iter()
                .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding))
                .filter(binding)
                .max_by_key(|s| created(s))
            else {
                continue;
            };
            if !can_encrypt(bind, sub.key.algorithm()) {
                continue;
            }
            let revocation =
                sub.signatures.iter().filter(|s| s.typ() == Some(SignatureType::SubkeyRevocation)).find(binding);
            let expires = expiry(sub.key.created_at().as_secs(), bind);
            candidates.push(candidate(Target::Subkey(i), &sub.key, expires, revocation, now));
        }

        let Some(best) = candidates.iter().filter(|c| c.problem.is_none()).max_by_key(|c| c.created) else {
            return Err(match candidates.iter().max_by_key(|c| c.created) {
                Some(Candidate { problem: Some((problem, fix)), .. }) => {
                    let fix = if *fix == Fix::Renew {
                        renew
                    } else {
                        format!(
                            "ask the customer for a key that encrypts with Curve25519 or RSA 3072 (`gpg \
                             --quick-gen-key 'Name <email>' future-default default 2y`), or to add such a subkey \
                             (`gpg --quick-add-key {fpr} cv25519 encr`) and export the key again"
                        )
                    };
                    PgpError::Unusable(format!("the key {fpr} cannot be encrypted to: {problem}: {fix}"))
                }
                _ => PgpError::Unusable(format!(
                    "the key {fpr} has no encryption-capable key (it can only sign or certify): ask the customer \
                     to add an encryption subkey (`gpg --quick-add-key {fpr} cv25519 encr`) and export the key again"
                )),
            });
        };
        let expires = match (primary_expires, best.expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let info = KeyInfo {
            fingerprint: fpr,
            encryption_fingerprint: best.fingerprint.clone(),
            algorithm: best.algorithm.clone(),
            bits: best.bits,
            expires: expires.map(|t| UNIX_EPOCH + Duration::from_secs(t)),
            user_ids,
        };
        Ok((best.target, info))
    }
}

/// Describes one encryption-capable (sub)key and finds what, if anything, stops its use.
fn candidate(
    target: Target,
    key: &impl KeyDetails,
    expires: Option<u64>,
    revocation: Option<&Signature>,
    now: u64,
) -> Candidate {
    let fingerprint = format!("{:X}", key.fingerprint());
    let what = if target == Target::Primary { "primary key" } else { "encryption subkey" };
    let (algorithm, bits, weakness) = describe(key);
    let created = key.created_at().as_secs();
    let problem = if let Some(sig) = revocation {
        Some((format!("its {what} {fingerprint} was revoked{}", reason(sig)), Fix::NewKey))
    } else if let Some(t) = expires.filter(|t| *t <= now) {
        Some((format!("its {what} {fingerprint} expired on {}", utc_date(t)), Fix::Renew))
    } else if created as u64 > now + CLOCK_SKEW {
        Some((
            format!("its {what} {fingerprint} was created in the future ({})", utc_date(created as u64)),
            Fix::NewKey,
        ))
    } else {
        weakness.map(|w| (format!("its {what} {fingerprint} is {w}"), Fix::NewKey))
    };
    Candidate { target, created, expires, fingerprint, algorithm, bits, problem }
}

/// Algorithm name, size, and why it is refused (None: accepted).
fn describe(key: &impl KeyDetails) -> (String, Option<u32>, Option<String>) {
    const ACCEPTED: &str = "we accept RSA of 2048 bits or more, or Curve25519 (cv25519)";
    match key.public_params() {
        PublicParams::RSA(p) if key.algorithm() != PublicKeyAlgorithm::RSASign => {
            let bits = u32::try_from(p.key.n().bits()).unwrap_or(u32::MAX);
            let weak = (bits < 2048).then(|| format!("RSA of {bits} bits, too weak ({ACCEPTED})"));
            ("RSA".to_owned(), Some(bits), weak)
        }
        PublicParams::ECDH(EcdhPublicParams::Curve25519Legacy { .. }) => ("ECDH cv25519".to_owned(), Some(255), None),
        PublicParams::X25519(_) => ("X25519".to_owned(), Some(255), None),
        PublicParams::ECDH(p) => {
            let name = format!("ECDH {}", p.curve());
            (name.clone(), None, Some(format!("{name}, which we do not support ({ACCEPTED})")))
        }
        _ => {
            let name = format!("{:?}", key.algorithm());
            (name.clone(), None, Some(format!("{name}, which we do not support ({ACCEPTED})")))
        }
    }
}

/// Whether a self-signature lets its key encrypt: the key flags say so (or, lacking key flags, the
/// algorithm can).
fn can_encrypt(sig: &Signature, algorithm: PublicKeyAlgorithm) -> bool {
    let has_flags =
        sig.config().is_some_and(|c| c.hashed_subpackets().any(|p| matches!(p.data, SubpacketData::KeyFlags(_))));
    if has_flags {
        let flags = sig.key_flags();
        flags.encrypt_comms() || flags.encrypt_storage()
    } else {
        matches!(
            algorithm,
            PublicKeyAlgorithm::RSA
                | PublicKeyAlgorithm::RSAEncrypt
                | PublicKeyAlgorithm::ECDH
                | PublicKeyAlgorithm::ElgamalEncrypt
                | PublicKeyAlgorithm::Elgamal
                | PublicKeyAlgorithm::X25519
                | PublicKeyAlgorithm::X448
        )
    }
}

fn is_user_certification(sig: &Signature) -> bool {
    matches!(
        sig.typ(),
        Some(
            SignatureType::CertGeneric
                | SignatureType::CertPersona
                | SignatureType::CertCasual
                | SignatureType::CertPositive
        )
    )
}

/// Cheap pre-filter before verifying: a signature naming another issuer is not a self-signature.
fn may_be_self_sig(sig: &Signature, primary: &impl KeyDetails) -> bool {
    let ids = sig.issuer_key_id();
    let fprs = sig.issuer_fingerprint();
    if ids.is_empty() && fprs.is_empty() {
        return true;
    }
    let id = primary.legacy_key_id();
    let fpr = primary.fingerprint();
    ids.iter().any(|i| **i == id) || fprs.iter().any(|f| **f == fpr)
}

/// Made no later than `now` (give or take [`CLOCK_SKEW`]) and not itself expired.
fn in_effect(sig: &Signature, now: u64) -> bool {
    let made = created(sig) as u64;
    let sig_expired =
        sig.signature_expiration_time().is_some_and(|d| d.as_secs() != 0 && made + d.as_secs() as u64 <= now);
    made <= now + CLOCK_SKEW && !sig_expired
}

fn created(sig: &Signature) -> u32 {
    sig.created().map(|t| t.as_secs()).unwrap_or(0)
}

/// Key expiry (unix seconds) from a self-signature's key expiration time; None: never.
fn expiry(key_created: u32, sig: &Signature) -> Option<u64> {
    sig.key_expiration_time().map(|d| d.as_secs()).filter(|s| *s != 0).map(|s| key_created as u64 + s as u64)
}

/// ` (reason: text)` of a revocation signature, or nothing.
fn reason(sig: &Signature) -> String {
    let text = sig.revocation_reason_string().map(|s| String::from_utf8_lossy(s).trim().to_owned()).unwrap_or_default();
    let code = match sig.revocation_reason_code() {
        Some(RevocationCode::KeySuperseded) => "superseded",
        Some(RevocationCode::KeyCompromised) => "compromised",
        Some(RevocationCode::KeyRetired) => "retired",
        _ => "",
    };
    match (code.is_empty(), text.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(" ({code})"),
        (true, false) => format!(" ({text})"),
        (false, false) => format!(" ({code}: {text})"),
    }
}

/// Encrypts one file to a [`RecipientKey`] as its bytes come, with bounded memory.
///
/// The outputs of every [`PgpEncryptor::push`], then of [`PgpEncryptor::finish`], concatenated are
/// the whole `.gpg` object. Memory held between calls is at most about 1.2 MiB (two 64 KiB chunks
/// and a 1 MiB scratch buffer), plus each call's input and output.
pub struct PgpEncryptor {
    /// PKESK packet and start of the SEIPD packet, handed out by the first call.
    head: Vec<u8>,
    /// Frames the literal data packet (plaintext side).
    literal: Framer,
    /// Frames the SEIPD packet (ciphertext side).
    seipd: Framer,
    cfb: BufEncryptor<Aes256>,
    mdc: Sha1,
    /// Framed plaintext of the current round, encrypted in place.
    scratch: Vec<u8>,
}

impl fmt::Debug for PgpEncryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgpEncryptor").field("buffered", &self.buffered()).finish_non_exhaustive()
    }
}

impl PgpEncryptor {
    /// Starts a file encrypted to `recipient`, which must pass [`RecipientKey::check`] at `now`.
    pub fn new(recipient: &RecipientKey, now: SystemTime) -> Result<PgpEncryptor, PgpError> {
        let (target, _) = recipient.select(now)?;
        let alg = SymmetricKeyAlgorithm::AES256;
        let session_key = alg.new_session_key(OsRng);
        let key = &recipient.key;
        let pkesk = match target {
            Target::Primary => {
                PublicKeyEncryptedSessionKey::from_session_key_v3(OsRng, &session_key, alg, &key.primary_key)
            }
            Target::Subkey(i) => {
                PublicKeyEncryptedSessionKey::from_session_key_v3(OsRng, &session_key, alg, &key.public_subkeys[i].key)
            }
        }
        .map_err(|e| PgpError::Encrypt(format!("encrypting the session key: {e}")))?;
        let mut head = Vec::with_capacity(1024);
        pkesk.to_writer_with_header(&mut head).map_err(|e| PgpError::Encrypt(format!("writing the PKESK: {e}")))?;

        // Random block, its last two octets repeated (RFC 4880 5.13); IV zero, no resync.
        let mut prefix = [0u8; 18];
        OsRng.fill_bytes(&mut prefix[..16]);
        prefix[16] = prefix[14];
        prefix[17] = prefix[15];
        let mut mdc = Sha1::new();
        mdc.update(prefix);
        let mut cfb = BufEncryptor::<Aes256>::new_from_slices(session_key.as_ref(), &[0u8; 16])
            .map_err(|e| PgpError::Encrypt(format!("AES-256 key setup: {e}")))?;
        cfb.encrypt(&mut prefix);

        let mut seipd_start = Vec::with_capacity(1 + prefix.len());
        seipd_start.push(1); // SEIPD version 1
        seipd_start.extend_from_slice(&prefix);
        Ok(PgpEncryptor {
            head,
            literal: Framer::new(TAG_LITERAL, CHUNK_LOG2, &LITERAL_HEADER),
            seipd: Framer::new(TAG_SEIPD, CHUNK_LOG2, &seipd_start),
            cfb,
            mdc,
            scratch: Vec::new(),
        })
    }

    /// Encrypts `plaintext` and returns the ciphertext ready so far (possibly empty).
    pub fn push(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, PgpError> {
        let mut out = std::mem::take(&mut self.head);
        out.reserve(plaintext.len() + plaintext.len() / (self.seipd.chunk / 2) + 8);
        for piece in plaintext.chunks(PUSH_PIECE) {
            self.scratch.clear();
            self.literal.write(piece, &mut self.scratch);
            self.mdc.update(&self.scratch);
            self.cfb.encrypt(&mut self.scratch);
            self.seipd.write(&self.scratch, &mut out);
        }
        Ok(out)
    }

    /// Ends the message (last literal bytes, modification detection code) and returns the rest of
    /// the ciphertext.
    pub fn finish(self) -> Result<Vec<u8>, PgpError> {
        let PgpEncryptor { head: mut out, literal, mut seipd, mut cfb, mut mdc, mut scratch } = self;
        scratch.clear();
        literal.finish(&mut scratch);
        scratch.extend_from_slice(&MDC_HEADER);
        mdc.update(&scratch);
        scratch.extend_from_slice(&mdc.finalize());
        cfb.encrypt(&mut scratch);
        seipd.write(&scratch, &mut out);
        seipd.finish(&mut out);
        Ok(out)
    }

    /// Bytes pushed that no call has returned yet (at most two 64 KiB chunks, plus the packet
    /// headers before the first call): an estimate of what finishing still adds.
    pub fn buffered(&self) -> usize {
        self.head.len() + self.literal.pending.len() + self.seipd.pending.len()
    }
}

/// Writes one packet's body with partial body lengths (RFC 4880 4.2.2.4): full chunks of
/// `2^chunk_log2` octets as they fill, then one final fixed length.
struct Framer {
    tag: u8,
    chunk_log2: u8,
    chunk: usize,
    pending: Vec<u8>,
    started: bool,
}

impl Framer {
    fn new(tag: u8, chunk_log2: u8, body_start: &[u8]) -> Framer {
        // A first partial length must be at least 512 octets; lengths are at most 2^30.
        let chunk_log2 = chunk_log2.clamp(9, 30);
        let chunk = 1usize << chunk_log2;
        let mut pending = Vec::with_capacity(chunk);
        pending.extend_from_slice(body_start);
        Framer { tag, chunk_log2, chunk, pending, started: false }
    }

    fn write(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        while !data.is_empty() {
            if self.pending.is_empty() && data.len() >= self.chunk {
                self.header(out);
                out.push(0xE0 | self.chunk_log2);
                out.extend_from_slice(&data[..self.chunk]);
                data = &data[self.chunk..];
                continue;
            }
            let take = (self.chunk - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == self.chunk {
                self.header(out);
                out.push(0xE0 | self.chunk_log2);
                out.extend_from_slice(&self.pending);
                self.pending.clear();
            }
        }
    }

    fn finish(mut self, out: &mut Vec<u8>) {
        self.header(out);
        let len = self.pending.len();
        if len < 192 {
            out.push(len as u8);
        } else if len < 8384 {
            let l = len - 192;
            out.push(((l >> 8) + 192) as u8);
            out.push((l & 0xFF) as u8);
        } else {
            out.push(0xFF);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
        out.extend_from_slice(&self.pending);
    }

    /// The packet tag octet (new format), before the first length only.
    fn header(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            out.push(0xC0 | self.tag);
            self.started = true;
        }
    }
}

/// Decrypts `input` (an OpenPGP message, binary or armored) into `output` with `secret_key` (armored or
/// binary, as `gpg --export-secret-keys` writes it) and its passphrase.
///
/// Streams with bounded memory. The plaintext goes to a temporary file next to `output`, renamed into
/// place only once the whole message was read and its integrity code (MDC, or AEAD tags) verified: on
/// any error `output` is left untouched. Legacy messages without integrity protection are refused;
/// signatures inside, if any, are not verified.
pub fn decrypt_file(input: &Path, output: &Path, secret_key: &[u8], passphrase: Option<&str>) -> Result<(), PgpError> {
    let key = parse_secret_key(secret_key)?;
    let name = input.display().to_string();
    let file = File::open(input).map_err(|e| io_error(format!("opening {name}"), e))?;
    let (message, _) = Message::from_reader(BufReader::with_capacity(DECRYPT_BUFFER, file))
        .map_err(|e| PgpError::Corrupt(format!("{name} is not an OpenPGP message: {e}")))?;
    let Message::Encrypted { esk, .. } = &message else {
        return Err(PgpError::Corrupt(format!("{name} is an OpenPGP message but is not encrypted")));
    };
    let session_key = find_session_key(&key, esk, passphrase, &name)?;
    let ring = TheRing {
        session_keys: vec![session_key],
        decrypt_options: DecryptionOptions::new().enable_gnupg_aead().set_seipdv1_read_mode(Seipdv1ReadMode::Streaming),
        ..TheRing::default()
    };
    let (mut message, _) = message
        .decrypt_the_ring(ring, true)
        .map_err(|e| PgpError::Corrupt(format!("{name}: cannot decrypt the data: {e}")))?;
    while message.is_compressed() {
        message = message.decompress().map_err(|e| PgpError::Corrupt(format!("{name}: cannot decompress: {e}")))?;
    }

    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let out_name = output.display();
    let mut tmp = tempfile::Builder::new()
        .prefix(".decrypting-")
        .tempfile_in(dir)
        .map_err(|e| io_error(format!("creating a temporary file in {}", dir.display()), e))?;
    {
        let mut writer = BufWriter::with_capacity(DECRYPT_BUFFER, tmp.as_file_mut());
        let mut buf = vec![0u8; DECRYPT_BUFFER];
        loop {
            let n = match message.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(&name, &e)),
            };
            writer.write_all(&buf[..n]).map_err(|e| io_error(format!("writing {out_name}"), e))?;
        }
        writer.flush().map_err(|e| io_error(format!("writing {out_name}"), e))?;
    }
    tmp.persist(output).map_err(|e| io_error(format!("renaming the decrypted file to {out_name}"), e.error))?;
    Ok(())
}

fn parse_secret_key(secret_key: &[u8]) -> Result<SignedSecretKey, PgpError> {
    // rpgp's parse errors are not echoed: they could quote the key's packets.
    SignedSecretKey::from_reader_single(secret_key.trim_ascii_start()).map(|(k, _)| k).map_err(|_| {
        PgpError::SecretKey(
            "the secret key could not be read: expected one OpenPGP secret key, as `gpg --armor \
             --export-secret-keys FINGERPRINT` writes it"
                .to_owned(),
        )
    })
}

/// Finds the session key: the PKESK addressed to one of `key`'s (sub)keys, decrypted with it.
fn find_session_key(
    key: &SignedSecretKey,
    esks: &[Esk],
    passphrase: Option<&str>,
    name: &str,
) -> Result<PlainSessionKey, PgpError> {
    let fpr = format!("{:X}", key.primary_key.fingerprint());
    let password = passphrase.map(Password::from).unwrap_or_else(Password::empty);
    let mut decrypters: Vec<(&dyn DecryptionKey, bool)> =
        vec![(&key.primary_key, key.primary_key.secret_params().is_encrypted())];
    for sub in &key.secret_subkeys {
        decrypters.push((&sub.key, sub.key.secret_params().is_encrypted()));
    }
    let (mut recipients, mut matched, mut locked, mut wrong_pass, mut failed) =
        (Vec::new(), false, false, false, false);
    for esk in esks {
        let Esk::PublicKeyEncryptedSessionKey(pkesk) = esk else { continue };
        let typ = match pkesk.version() {
            PkeskVersion::V3 => EskType::V3_4,
            PkeskVersion::V6 => EskType::V6,
            PkeskVersion::Other(_) => continue,
        };
        if let Ok(id) = pkesk.id() {
            recipients.push(id.as_ref().iter().map(|b| format!("{b:02X}")).collect::<String>());
        }
        let Ok(values) = pkesk.values() else { continue };
        for (dec, is_locked) in &decrypters {
            if !addressed_to(pkesk, *dec) {
                continue;
            }
            matched = true;
            if *is_locked && passphrase.is_none() {
                locked = true;
                continue;
            }
            let pw = if *is_locked { &password } else { &Password::empty() };
            match dec.decrypt(pw, values, typ) {
                Ok(Ok(session_key)) => return Ok(session_key),
                Ok(Err(_)) => failed = true,
                Err(_) => wrong_pass = true,
            }
        }
    }
    Err(PgpError::SecretKey(if !matched {
        let to = if recipients.is_empty() { "no public key".to_owned() } else { recipients.join(", ") };
        format!("{name} is encrypted to {to}, not to the secret key {fpr} (or one of its subkeys)")
    } else if wrong_pass {
        format!("the passphrase of the secret key {fpr} is wrong (or the key is a gpg stub without its secret part)")
    } else if locked {
        format!("the secret key {fpr} is protected by a passphrase: give it")
    } else if failed {
        format!("{name}: the session key could not be decrypted with the secret key {fpr} (damaged file or key)")
    } else {
        format!("{name}: no usable session key for the secret key {fpr}")
    }))
}

/// Whether a PKESK names `key` (or nobody: an anonymous recipient).
fn addressed_to(pkesk: &PublicKeyEncryptedSessionKey, key: &dyn DecryptionKey) -> bool {
    match pkesk.version() {
        PkeskVersion::V3 => pkesk.id().is_ok_and(|id| id.is_wildcard() || *id == key.legacy_key_id()),
        PkeskVersion::V6 => pkesk.fingerprint().is_ok_and(|f| f.is_none_or(|f| *f == key.fingerprint())),
        PkeskVersion::Other(_) => false,
    }
}

/// Maps a read error of the decrypted stream: integrity failures and truncation are named as such.
fn read_error(name: &str, e: &io::Error) -> PgpError {
    let mdc = e.get_ref().and_then(|inner| inner.downcast_ref::<pgp::errors::Error>());
    if matches!(mdc, Some(pgp::errors::Error::MdcError)) {
        return PgpError::Corrupt(format!(
            "{name}: integrity check failed (MDC mismatch): the file was modified or damaged; nothing was written"
        ));
    }
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return PgpError::Corrupt(format!("{name}: the encrypted data is truncated; nothing was written"));
    }
    PgpError::Corrupt(format!("{name}: the encrypted data is damaged ({e}); nothing was written"))
}

fn io_error(context: String, source: io::Error) -> PgpError {
    PgpError::Io { context, source }
}

/// Binary packet header of a secret key or subkey (tags 5 and 7, old or new format).
fn is_secret_key_tag(first: u8) -> bool {
    if first & 0x80 == 0 {
        return false;
    }
    let tag = if first & 0x40 != 0 { first & 0x3F } else { (first >> 2) & 0x0F };
    tag == 5 || tag == 7
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `YYYY-MM-DD` (UTC) of a unix time.
fn utc_date(secs: u64) -> String {
    // Days to civil date (H. Hinnant's algorithm), for days since 1970-01-01.
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(1_767_225_600), "2026-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(4_102_444_799), "2099-12-31");
    }

    /// Parses framed output back: (tag, body) with partial lengths joined.
    fn unframe(mut data: &[u8]) -> (u8, Vec<u8>) {
        let tag = data[0] & 0x3F;
        data = &data[1..];
        let mut body = Vec::new();
        loop {
            let b = data[0] as usize;
            if (224..255).contains(&b) {
                let len = 1 << (b & 0x1F);
                body.extend_from_slice(&data[1..1 + len]);
                data = &data[1 + len..];
                continue;
            }
            let (len, skip) = if b < 192 {
                (b, 1)
            } else if b < 224 {
                (((b - 192) << 8) + data[1] as usize + 192, 2)
            } else {
                (u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize, 5)
            };
            body.extend_from_slice(&data[skip..skip + len]);
            assert_eq!(data.len(), skip + len, "trailing bytes after the final length");
            return (tag, body);
        }
    }

    #[test]
    fn framer_round_trips_every_boundary() {
        for start in [0usize, 6] {
            for len in [0usize, 1, 185, 186, 191, 192, 505, 506, 511, 512, 513, 1023, 1024, 1030, 8383, 8384, 9000] {
                for piece in [1usize, 7, 512, 4096] {
                    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                    let mut framer = Framer::new(TAG_LITERAL, 9, &data[..0]);
                    framer.pending.extend(std::iter::repeat_n(0xAA, start));
                    let mut out = Vec::new();
                    for p in data.chunks(piece) {
                        framer.write(p, &mut out);
                    }
                    framer.finish(&mut out);
                    let (tag, body) = unframe(&out);
                    assert_eq!(tag, TAG_LITERAL);
                    assert_eq!(&body[..start], &vec![0xAA; start][..]);
                    assert_eq!(&body[start..], &data[..], "len {len} piece {piece} start {start}");
                }
            }
        }
    }

    #[test]
    fn secret_key_tags() {
        assert!(is_secret_key_tag(0x95)); // old format, tag 5
        assert!(is_secret_key_tag(0xC5)); // new format, tag 5
        assert!(is_secret_key_tag(0xC7)); // new format, tag 7
        assert!(!is_secret_key_tag(0x99)); // old format public key
        assert!(!is_secret_key_tag(0xC6)); // new format public key
        assert!(!is_secret_key_tag(b'-'));
    }

    #[test]
    fn types_cross_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        fn assert_send<T: Send>() {}
        assert_send::<PgpEncryptor>();
        assert_send_sync::<RecipientKey>();
        assert_send_sync::<PgpError>();
    }

    #[test]
    fn garbage_is_not_a_key() {
        let err = RecipientKey::parse(b"hello").unwrap_err();
        assert!(matches!(err, PgpError::InvalidKey(_)), "{err}");
        let err = RecipientKey::parse(b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n").unwrap_err();
        assert!(err.to_string().contains("secret"), "{err}");
    }
}
