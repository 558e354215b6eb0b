//! The `migrate` and `token create` commands.

use crate::domain::NewUser;
use crate::services::db;
use crate::settings::Settings;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Applies migrations to the configured database.
pub async fn migrate(settings: &Settings) -> Result<(), BoxError> {
    let database = db::open(settings)?;
    database.migrate().await?;
    database.close();
    eprintln!("migrations applied");
    Ok(())
}

/// Creates a token for the user with `email` (creating the user with `name`
/// if there is none) and prints it on stdout, once.
pub async fn create_token(
    settings: &Settings,
    email: &str,
    name: Option<&str>,
) -> Result<(), BoxError> {
    let database = db::open(settings)?;
    database.migrate().await?;
    let connection = database.acquire().await?;
    let default_name = email.split('@').next().unwrap_or(email);
    let new = NewUser {
        name: name.unwrap_or(default_name).trim().to_owned(),
        email: email.trim().to_owned(),
    };
    new.validate()?;
    let outcome = async {
        connection.begin().await?;
        let (user, created) = connection.find_or_create_user(&new).await?;
        let token = connection.create_token(user.id).await?;
        connection.commit().await?;
        Ok::<_, crate::store::StoreError>((user, created, token))
    }
    .await;
    connection.close().await;
    database.close();
    let (user, created, token) = outcome?;
    eprintln!(
        "{} user {} <{}> (id {}); the token below is shown once:",
        if created { "created" } else { "found" },
        user.name,
        user.email,
        user.id
    );
    println!("{}", token.token);
    Ok(())
}
