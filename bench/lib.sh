# bench/lib.sh — shell functions the bench scripts share (sourced: `. "$HERE/lib.sh"`, not run).

# mint_token URL [CLAIMS_JSON]: prints an access token of the mock identity provider at URL (`POST /token`;
# default claims: user 7 for bff-web, one hour), asking again for up to 10 s while the provider starts; fails
# (printing nothing) when none came.
mint_token() {
  local url=$1 claims=${2:-'{"sub":"7","aud":"bff-web","ttl_s":3600}'} t token
  for t in $(seq 100); do
    token=$(curl -s -X POST "$url/token" -H 'content-type: application/json' -d "$claims" 2>/dev/null \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' 2>/dev/null)
    [ -n "$token" ] && { printf '%s\n' "$token"; return 0; }
    sleep 0.1
  done
  return 1
}

# render_backend_conf HERE WORK: WORK/backend.conf, the benchmark backend's nginx configuration
# (HERE/conf/backend_nginx.conf) with its placeholders filled in for WORK and without its HTTPS listener.
render_backend_conf() {
  sed -e "s#@WORK@#$2#g" -e "s#@USER@#$(id -un)#g" -e "s#@GROUP@#$(id -gn)#g" \
    "$1/conf/backend_nginx.conf" | sed '/19443/d; /ssl_/d' > "$2/backend.conf"
}
