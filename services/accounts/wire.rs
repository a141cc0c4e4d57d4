//! The identity kernel's wire forms (proto/ecom/common/v1): the `User` message that auth and
//! users both answer, its `Role`, and the encoding the profile cache stores. The only file of
//! the kernel's identity part that sees protobuf types.

use prost::Message as _;

use super::domain::Profile;
use crate::clock::{from_timestamp, timestamp};
use crate::proto::ecom::common::v1 as common;
use crate::tokens::Role;

/// A role on the wire.
pub fn role(r: Role) -> common::Role {
    match r {
        Role::Admin => common::Role::Admin,
        Role::User => common::Role::User,
    }
}

/// A wire role; `None` for one that is neither user nor admin (unspecified or unknown).
pub fn role_from_wire(value: i32) -> Option<Role> {
    match common::Role::try_from(value) {
        Ok(common::Role::Admin) => Some(Role::Admin),
        Ok(common::Role::User) => Some(Role::User),
        _ => None,
    }
}

/// The full profile on the wire (`ecom.common.v1.User`).
pub fn user(p: &Profile) -> common::User {
    common::User {
        id: p.id,
        email: p.email.clone(),
        username: p.username.clone(),
        first_name: p.first_name.clone(),
        last_name: p.last_name.clone(),
        gender: p.gender.clone(),
        image: p.image.clone(),
        phone: p.phone.clone(),
        age: p.age.unwrap_or(0),
        role: role(p.role) as i32,
        created_at: Some(timestamp(p.created_at)),
        updated_at: Some(timestamp(p.updated_at)),
    }
}

/// A wire profile; `None` when it lacks a role or a time.
fn profile(u: common::User) -> Option<Profile> {
    Some(Profile {
        role: role_from_wire(u.role)?,
        created_at: from_timestamp(u.created_at.as_ref()?)?,
        updated_at: from_timestamp(u.updated_at.as_ref()?)?,
        id: u.id,
        email: u.email,
        username: u.username,
        first_name: u.first_name,
        last_name: u.last_name,
        gender: u.gender,
        image: u.image,
        phone: u.phone,
        // The wire has no "absent" age: 0 is what an age never given is sent as.
        age: (u.age != 0).then_some(u.age),
    })
}

/// A profile as the cache stores it: the wire `User`, protobuf-encoded, so that instances of
/// every build share the `users:profile:*` entries.
pub fn encode_profile(p: &Profile) -> Vec<u8> {
    user(p).encode_to_vec()
}

/// A cached profile; `None` when the bytes are not a complete one (then it is read again).
pub fn decode_profile(bytes: &[u8]) -> Option<Profile> {
    common::User::decode(bytes).ok().and_then(profile)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone as _, Utc};

    use super::*;

    fn sample(age: Option<i32>, role: Role) -> Profile {
        Profile {
            id: 7,
            email: "jane@example.com".to_owned(),
            username: "jane".to_owned(),
            first_name: "Jane".to_owned(),
            last_name: "Doe".to_owned(),
            gender: "female".to_owned(),
            image: "https://cdn.example.com/a.png".to_owned(),
            phone: "+1 555 0100".to_owned(),
            age,
            role,
            created_at: Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap(),
            updated_at: Utc.timestamp_opt(1_700_000_100, 0).unwrap(),
        }
    }

    #[test]
    fn cached_profiles_answer_the_same_wire_user() {
        for p in [sample(Some(30), Role::Admin), sample(None, Role::User)] {
            let cached = decode_profile(&encode_profile(&p)).expect("a complete profile");
            assert_eq!(user(&cached), user(&p));
        }
        assert_eq!(
            decode_profile(&encode_profile(&sample(Some(30), Role::User))),
            Some(sample(Some(30), Role::User))
        );
    }

    #[test]
    fn incomplete_cache_entries_are_misses() {
        let mut u = user(&sample(Some(1), Role::User));
        u.created_at = None;
        assert_eq!(decode_profile(&u.encode_to_vec()), None);
        assert_eq!(decode_profile(b"\xff\xff"), None);
    }
}
