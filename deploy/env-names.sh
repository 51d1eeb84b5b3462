# Sourced by deploy/check-env and deploy/make-env: which names an env file must hold, and which are secrets.

# env_names SETTINGS_YAML: every ${NAME} the settings file uses (comment lines excluded) and the names
# docker-compose.yml needs itself, one per line, sorted.
env_names() {
    { grep -v '^[[:space:]]*#' "$1" | grep -o '\${[A-Za-z_][A-Za-z0-9_]*}' | tr -d '${}'
      printf '%s\n' PBX_IP ESL_PASSWORD GRAFANA_ADMIN_PASSWORD; } | sort -u
}

# is_secret NAME: a name ending PASSWORD, SECRET or TOKEN, or that and _<digits> (SIP_PASSWORD_1000).
is_secret() {
    [[ $1 =~ (PASSWORD|SECRET|TOKEN)(_[0-9]+)?$ ]]
}
