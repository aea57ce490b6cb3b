//! The commented ServiceProfile template (`wisp profile --template`).

use super::profile_name;

/// A commented ServiceProfile for `service` in `namespace` that explains
/// each field; it validates as is.
pub fn template(service: &str, namespace: &str, cluster_domain: &str) -> String {
    let name = profile_name(service, namespace, cluster_domain);
    format!(
        r#"### ServiceProfile for {service}.{namespace} ###
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata:
  # The profile is named after the service's fully qualified name.
  name: {name}
  namespace: {namespace}
spec:
  # Routes of the service. Requests are counted per route (label rt_route);
  # the first route whose condition matches a request wins.
  routes:
  - name: '/authors/{{id}}'

    # Which requests belong to the route. Fields set together must all hold;
    # `all`, `any` and `not` combine further conditions.
    condition:
      # A regular expression over the path; the proxy anchors it (^...$).
      pathRegex: '/authors/\d+'

      # The HTTP method.
      method: POST

    # How responses are classified, first match wins. Unclassified
    # responses fail when they are 5xx (or carry a failing gRPC status).
    responseClasses:
    - condition:
        status:
          min: 500
          max: 599
      isFailure: true

    # Retry failed requests of this route, within the retry budget.
    # isRetryable: true

    # Give up on a request (answer 504) after this long, retries included.
    # timeout: 300ms

  # How many retries may be added on top of the original requests: a ratio
  # of them, plus a floor per second, measured over a window.
  # retryBudget:
  #   retryRatio: 0.2
  #   minRetriesPerSecond: 10
  #   ttl: 10s
"#
    )
}
