//! Tokens made for a directory validate against it, and only it.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wisp_identity::{DirTokenValidator, TokenError, TokenKey, TokenValidator};

#[tokio::test]
async fn token_round_trips_through_the_dir_validator() {
    let dir = common::init_dir();
    let token = common::token(dir.path(), "web", "shop", Duration::from_secs(8760 * 3600));
    let validator = DirTokenValidator::load_dir(dir.path()).expect("load");
    let sa = validator
        .validate(format!("{token}\n").as_bytes())
        .await
        .expect("valid");
    assert_eq!((sa.name.as_str(), sa.namespace.as_str()), ("web", "shop"));

    let other = common::init_dir();
    let other = DirTokenValidator::load_dir(other.path()).expect("load");
    assert_eq!(
        other.validate(token.as_bytes()).await,
        Err(TokenError::Invalid)
    );
}

#[tokio::test]
async fn expired_token_names_its_expiry() {
    let dir = common::init_dir();
    let key = TokenKey::load(&dir.path().join("token.key")).expect("key");
    let token = key
        .sign(
            "web",
            "shop",
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
        .expect("sign");
    let err = DirTokenValidator::new(key)
        .validate(token.as_bytes())
        .await
        .expect_err("expired");
    assert_eq!(err.to_string(), "token expired at 2023-11-14T22:13:20Z");
    assert!(SystemTime::now() > UNIX_EPOCH + Duration::from_secs(1_700_000_000));
}
