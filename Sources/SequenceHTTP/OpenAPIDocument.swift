/// The OpenAPI 3.1 description of the listener, shipped inside the binary (no resource bundle to
/// lose when the binary is copied) and served at `GET /v1/openapi.yaml`. A test checks that every
/// path and method here is served and that every route the server has is described here.
package enum OpenAPIDocument {
    package static let yaml = #"""
        openapi: 3.1.0
        info:
          title: seqd HTTP API
          version: "1"
          description: |
            Probes, Prometheus metrics, the /v1 API and one-click unsubscribe of seqd, a self-hosted
            sequence engine. Paths carry ids, never email addresses, so access logs hold none.

            Errors are JSON objects: {"error": CODE, "message": TEXT} plus, where it applies,
            "field" (the request field at fault) and "status" (the enrollment's current status).
            Bad JSON, unknown fields, wrong types and anything else these schemas rule out (lengths,
            patterns, which fields go together) are 400; unknown sequences or contacts named in a
            body and values the store rejects (an address that cannot be mailed, an unknown time
            zone) are 422; invalid transitions are 409; an unreachable or busy database is 503. A
            path asked with a method it does not serve is 405 with `Allow`. Text fields never hold
            NUL (PostgreSQL text cannot).

            /v1 needs `Authorization: Bearer <http.api_token>`: without a token or with a wrong one
            the answer is 401. When no http.api_token is configured the API is off and every /v1
            request gets 503 with error "api_disabled" (the fix is the operator's, not the client's).
        servers:
          - url: /
        components:
          securitySchemes:
            bearer:
              type: http
              scheme: bearer
          schemas:
            Error:
              type: object
              required: [error, message]
              properties:
                error: { type: string, examples: [unknown_field, invalid_transition, unauthorized] }
                message: { type: string }
                field: { type: string, description: the request field at fault }
                status: { type: string, description: the enrollment's current status, for refused transitions }
            Contact:
              type: object
              additionalProperties: false
              required: [email]
              properties:
                email: { type: string, format: email, maxLength: 254 }
                first_name: { type: [string, "null"], maxLength: 1000, pattern: '^[^\x00]*$' }
                last_name: { type: [string, "null"], maxLength: 1000, pattern: '^[^\x00]*$' }
                time_zone: { type: [string, "null"], maxLength: 100, pattern: '^[^\x00]*$', description: an IANA zone such as Europe/Berlin }
                attributes:
                  type: [object, "null"]
                  description: merged key by key into the stored attributes; values are stored as text
                  propertyNames: { minLength: 1, maxLength: 200, pattern: '^[^\x00]*$' }
                  additionalProperties:
                    oneOf:
                      - { type: string, maxLength: 10000, pattern: '^[^\x00]*$' }
                      - { type: [number, boolean] }
            EnrollmentRequest:
              type: object
              additionalProperties: false
              required: [sequence]
              description: name the contact with exactly one of email and contact_id
              oneOf:
                - { required: [email] }
                - { required: [contact_id] }
              properties:
                sequence: { type: string, minLength: 1, maxLength: 200, pattern: '^[^\x00]*$' }
                email: { type: string, format: email, maxLength: 254 }
                contact_id: { type: integer, format: int64, minimum: 1, maximum: 9223372036854775807 }
                allow_reenroll: { type: [boolean, "null"], default: false, description: enroll a contact who went through the sequence before }
            Event:
              type: object
              additionalProperties: false
              required: [contact, name, key]
              description: |
                Something a contact did. The contact is created when it does not exist. A key seen
                before changes nothing (the answer is 200 with duplicate true), so a sender may retry.
              properties:
                contact: { type: string, format: email, maxLength: 254, description: the contact's address }
                name: { type: string, minLength: 1, maxLength: 100, pattern: "^[A-Za-z0-9][A-Za-z0-9_.:-]*$", description: "what happened, e.g. trial_started; matched against sequences' trigger.event and exit_when event goals" }
                key: { type: string, minLength: 1, maxLength: 200, pattern: '^[^\x00-\x1F\x7F-\x9F]*$', description: "the sender's idempotency key, unique across all events (no control characters)" }
                properties:
                  type: [object, "null"]
                  maxProperties: 50
                  description: "flat values, stored as text; templates of an enrollment the event started read them as {{event.NAME}}"
                  propertyNames: { maxLength: 64, pattern: "^[A-Za-z_][A-Za-z0-9_]*$" }
                  additionalProperties:
                    oneOf:
                      - { type: string, maxLength: 1000, pattern: '^[^\x00]*$' }
                      - { type: number }
                      - { type: boolean }
                occurred_at: { type: [string, "null"], format: date-time, description: "when it happened by the sender's clock (RFC 3339); informational" }
            EventResult:
              type: object
              properties:
                event_id: { type: integer, description: the stored event (the first one with this key, for a duplicate) }
                contact_id: { type: integer }
                duplicate: { type: boolean, description: "the key was seen before: nothing was changed" }
                contact_created: { type: boolean }
                enrolled:
                  type: array
                  items:
                    type: object
                    properties:
                      sequence: { type: string }
                      version: { type: integer }
                      enrollment_id: { type: integer }
                skipped:
                  type: array
                  description: sequences whose trigger names the event but that did not enroll the contact
                  items:
                    type: object
                    properties:
                      sequence: { type: string }
                      reason: { type: string, enum: [condition_not_met, already_live, enrolled_before, suppressed, missing_template_fields] }
                      missing_fields: { type: array, items: { type: string } }
                converted:
                  type: array
                  description: live enrollments of the contact that met a goal (exit_when) and ended converted
                  items:
                    type: object
                    properties:
                      enrollment_id: { type: integer }
                      sequence: { type: string }
                      goal: { type: string, description: "exit_when[N] and the goal as JSON, as the audit trail records it" }
            Signal:
              type: object
              additionalProperties: false
              required: [type]
              description: name the target with exactly one of email and enrollment_id
              oneOf:
                - { required: [email] }
                - { required: [enrollment_id] }
              dependentSchemas:
                until: { properties: { type: { const: pause } } }
                sequence: { required: [email], properties: { type: { enum: [reply, pause, resume, stop] } } }
              properties:
                type: { type: string, enum: [reply, opt_out, bounce, pause, resume, stop] }
                email:
                  type: string
                  format: email
                  maxLength: 254
                  description: every live enrollment of the contact (or its enrollment in `sequence`); opt_out and bounce suppress the address even when it has no contact
                enrollment_id: { type: integer, format: int64, minimum: 1, maximum: 9223372036854775807 }
                sequence: { type: string, maxLength: 200, pattern: '^[^\x00]*$', description: with email, only the enrollment in this sequence; not for opt_out and bounce }
                reason: { type: string, maxLength: 1000, pattern: '^[^\x00]*$', description: recorded in the audit trail }
                until: { type: string, format: date-time, maxLength: 64, description: pause only, resume automatically at this RFC 3339 time }
            SignalResult:
              type: object
              properties:
                type: { type: string }
                suppressed: { type: boolean }
                changed: { type: integer }
                in_flight_settled: { type: boolean, description: false when a send already under way had not settled when the wait timed out }
                enrollments:
                  type: array
                  items:
                    type: object
                    properties:
                      id: { type: integer }
                      sequence: { type: string }
                      from: { type: string }
                      to: { type: [string, "null"] }
                      refused: { type: [string, "null"] }
            InboundResult:
              type: object
              properties:
                outcome: { type: string, enum: [applied, ignored, unmatched, refused] }
                classification: { type: string, enum: [reply, out_of_office, bounce, ignored] }
                detail: { type: [string, "null"], description: the auto-reply marker, the failed status codes, or why it was ignored }
                message_id: { type: [string, "null"], description: the inbound message's own Message-ID }
                matched_by: { type: [string, "null"], description: "In-Reply-To <id>, References <id>, Message-ID of the returned message <id> (only ids whose MAC verifies), or sender address and sequence sender (<evidence>) with inbound.trust_from" }
                return_date: { type: [string, "null"], format: date, description: the return date an auto-reply stated clearly }
                resume_at: { type: [string, "null"], format: date-time, description: when the out-of-office pause ends }
                suppressed: { type: integer, description: addresses put on the suppression list (bounces) }
                ignored_recipients: { type: integer, description: "failed recipients a bounce report listed that are not the matched delivery's recipient (ignored)" }
                note: { type: [string, "null"], description: why nothing was done }
                in_flight_settled: { type: boolean }
                enrollments:
                  type: array
                  items:
                    type: object
                    properties:
                      id: { type: integer }
                      sequence: { type: string }
                      from: { type: string }
                      to: { type: [string, "null"] }
                      refused: { type: [string, "null"] }
                      note: { type: [string, "null"], description: "stop_company_on_reply: a colleague's reply stopped it" }
            ContactEnrollments:
              type: object
              properties:
                contact_id: { type: integer }
                email: { type: string }
                suppressed: { type: boolean }
                enrollments:
                  type: array
                  items: { $ref: "#/components/schemas/Enrollment" }
            Enrollment:
              type: object
              properties:
                id: { type: integer }
                contact_id: { type: integer, description: "in GET /v1/enrollments/{id}" }
                sequence: { type: string }
                version: { type: integer }
                step: { type: string }
                status: { type: string, enum: [active, paused, completed, replied, opted_out, bounced, failed, stopped, converted] }
                blocked_reason: { type: string }
                next_run_at: { type: [string, "null"], format: date-time }
                events:
                  type: array
                  items:
                    type: object
                    properties:
                      at: { type: string, format: date-time }
                      event: { type: string }
                      from_status: { type: [string, "null"] }
                      to_status: { type: string }
                      from_step: { type: [string, "null"] }
                      to_step: { type: string }
                      actor: { type: string }
                      reason: { type: [string, "null"] }
                deliveries:
                  type: array
                  items: { $ref: "#/components/schemas/Delivery" }
            Delivery:
              type: object
              properties:
                id: { type: integer }
                step: { type: string }
                status: { type: string }
                attempts: { type: integer }
                sent_at: { type: [string, "null"], format: date-time }
                last_error: { type: [string, "null"] }
            EnrollmentPage:
              type: object
              required: [enrollments, next_cursor]
              properties:
                enrollments:
                  type: array
                  items:
                    type: object
                    properties:
                      id: { type: integer }
                      contact_id: { type: integer }
                      sequence: { type: string }
                      version: { type: integer }
                      step: { type: string }
                      status: { type: string }
                      next_run_at: { type: [string, "null"], format: date-time }
                      updated_at: { type: string, format: date-time }
                next_cursor: { type: [string, "null"], description: "pass as cursor for the next page; null on the last page" }
            SequenceSummary:
              type: object
              properties:
                name: { type: string }
                latest_version: { type: [integer, "null"] }
                live: { type: integer, description: active, paused and failed enrollments }
                finished: { type: integer }
                paused_at: { type: [string, "null"], format: date-time }
            SequenceVersion:
              type: object
              properties:
                name: { type: string }
                version: { type: integer }
                latest_version: { type: integer }
                content_hash: { type: string }
                created_at: { type: string, format: date-time }
                created_by: { type: string }
                paused_at: { type: [string, "null"], format: date-time }
                definition: { type: object, description: the definition as stored (canonical JSON) }
            SequencePause:
              type: object
              properties:
                name: { type: string }
                paused_at: { type: string, format: date-time }
                resumed_at: { type: [string, "null"], format: date-time }
                shifted_enrollments: { type: integer, description: "on resume: waiting enrollments whose due time moved by the pause's length" }
            SendSwitch:
              type: object
              properties:
                paused: { type: boolean }
                since: { type: [string, "null"], format: date-time }
                pending_deliveries: { type: integer }
          responses:
            Error:
              description: a JSON error
              content:
                application/json:
                  schema: { $ref: "#/components/schemas/Error" }
            Unauthorized:
              description: no bearer token, or a wrong one
              content:
                application/json:
                  schema: { $ref: "#/components/schemas/Error" }
            ApiDisabled:
              description: no http.api_token is configured, or the database is unavailable
              content:
                application/json:
                  schema: { $ref: "#/components/schemas/Error" }
            Page:
              description: a small HTML page
              content:
                text/html: {}
        paths:
          /healthz:
            get:
              summary: Liveness - the process's loops are ticking (no database call)
              responses:
                "200": { description: alive }
                "503": { description: a loop stopped ticking; JSON with a reason }
          /readyz:
            get:
              summary: Readiness - the database answers and the schema is one this binary supports
              description: Newer schemas are accepted, so a rolling upgrade that migrates first keeps old replicas ready.
              responses:
                "200": { description: "ready: {status, schema_version, minimum_schema_version}" }
                "503": { description: "not ready: {status, reason}" }
          /metrics:
            get:
              summary: Prometheus text format (prefix seqd_, base units, _total counters, no contact labels)
              responses:
                "200":
                  description: metrics
                  content:
                    text/plain: {}
          /v1/openapi.yaml:
            get:
              summary: This document (no token needed)
              responses:
                "200":
                  description: OpenAPI 3.1
                  content:
                    application/yaml: {}
          /v1/contacts:
            post:
              summary: Upsert a contact by email address; returns its id
              security: [{ bearer: [] }]
              requestBody:
                required: true
                content:
                  application/json:
                    schema: { $ref: "#/components/schemas/Contact" }
              responses:
                "201": { description: "created: {id, result: created}" }
                "200": { description: "existing contact: {id, result: updated|unchanged, converted: [{enrollment_id, sequence, goal}]}; an update that meets a goal (exit_when) of a live enrollment ends it converted at once" }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "422": { $ref: "#/components/responses/Error" }
                "503": { $ref: "#/components/responses/ApiDisabled" }
          /v1/enrollments:
            get:
              summary: Enrollments in id order, filtered by sequence and status, a page at a time
              description: Pass next_cursor from one page as cursor for the next; pages stay stable while enrollments are added.
              security: [{ bearer: [] }]
              parameters:
                - { name: sequence, in: query, required: false, schema: { type: string, minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9_-]*$' } }
                - { name: status, in: query, required: false, schema: { type: string, enum: [active, paused, completed, replied, opted_out, bounced, failed, stopped, converted] } }
                - { name: limit, in: query, required: false, schema: { type: integer, minimum: 1, maximum: 500, default: 100 } }
                - { name: cursor, in: query, required: false, schema: { type: string, pattern: '^[1-9][0-9]{0,17}$' } }
              responses:
                "200":
                  description: a page
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/EnrollmentPage" }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "503": { $ref: "#/components/responses/ApiDisabled" }
            post:
              summary: Enroll a contact in a sequence, pinned to its latest version and due at once
              security: [{ bearer: [] }]
              requestBody:
                required: true
                content:
                  application/json:
                    schema: { $ref: "#/components/schemas/EnrollmentRequest" }
              responses:
                "201": { description: "enrolled: {enrollment_id, contact_id, sequence, version, status}" }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "409": { description: "already_enrolled, enrolled_before (with status) or suppressed", content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } } }
                "422": { description: "unknown_sequence, unknown_contact or missing_template_fields", content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } } }
                "503": { $ref: "#/components/responses/ApiDisabled" }
          /v1/events:
            post:
              summary: Record an event; enroll the contact in every sequence whose trigger it meets, and convert enrollments whose goal it meets
              description: |
                Once per key: a retried event changes nothing and is answered 200 with duplicate true.
                Enrollment follows the rules of POST /v1/enrollments (one live enrollment per sequence,
                never again after a finished one, never a suppressed address).
              security: [{ bearer: [] }]
              requestBody:
                required: true
                content:
                  application/json:
                    schema: { $ref: "#/components/schemas/Event" }
              responses:
                "201":
                  description: recorded
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/EventResult" }
                "200":
                  description: a repeat of a key seen before; nothing changed
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/EventResult" }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "422": { description: "invalid_field: a name, key, property or address the rules refuse (field names it)", content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } } }
                "503": { $ref: "#/components/responses/ApiDisabled" }
          /v1/contacts/{id}/enrollments:
            get:
              summary: A contact's enrollments with state, deliveries and full history
              security: [{ bearer: [] }]
              parameters:
                - { name: id, in: path, required: true, schema: { type: integer, format: int64, minimum: 1, maximum: 9223372036854775807 } }
              responses:
                "200":
                  description: the contact's enrollments
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/ContactEnrollments" }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "404": { $ref: "#/components/responses/Error" }
                "503": { $ref: "#/components/responses/ApiDisabled" }
          /v1/contacts/{id}/export:
            get:
              summary: Everything seqd holds about a contact, as JSON (data-subject access; what `seqd contact export` prints)
              security: [{ bearer: [] }]
              parameters:
                - { name: id, in: path, required: true, schema: { type: integer, format: int64, minimum: 1, maximum: 9223372036854775807 } }
              responses:
                "200":
                  description: the contact's data
                  content:
                    application/json:
                      schema: { type: object }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "404": { $ref: "#/components/responses/Error" }
                "503": { $ref: "#/components/responses/ApiDisabled" }
          /v1/contacts/{id}:
            delete:
              summary: Erase a contact - end its enrollments, remove its personal data, keep a hashed suppression (`seqd contact erase`)
              description: Cannot be undone. Repeating it changes nothing more.
              security: [{ bearer: [] }]
              parameters:
                - { name: id, in: path, required: true, schema: { type: integer, format: int64, minimum: 1, maximum: 9223372036854775807 } }
              responses:
                "200":
                  description: "erased: {id, erased: true}"
                  content:
                    application/json:
                      schema: { type: object, properties: { id: { type: integer }, erased: { type: boolean } } }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "404": { $ref: "#/components/responses/Error" }
                "503": { $ref: "#/components/responses/ApiDisabled" }
          /v1/sequences:
            get:
              summary: Sequences with their latest version and enrollment counts (`seqd sequence list`)
              security: [{ bearer: [] }]
              responses:
                "200":
                  description: the sequences, by name
                  content:
                    application/json:
                      schema: { type: object, properties: { sequences: { type: array, items: { $ref: "#/components/schemas/SequenceSummary" } } } }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "503": { $ref: "#/components/responses/ApiDisabled" }
          /v1/sequences/{name}:
            parameters:
              - { name: name, in: path, required: true, schema: { type: string, minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9_-]*$' } }
            get:
              summary: One stored version (the latest unless version is given) with its definition (`seqd sequence show`)
              description: The latest version carries an ETag ("v3"); send it back in If-Match when applying a change.
              security: [{ bearer: [] }]
              parameters:
                - { name: version, in: query, required: false, schema: { type: integer, minimum: 1, maximum: 2147483647 } }
              responses:
                "200":
                  description: the version
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/SequenceVersion" }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "404": { $ref: "#/components/responses/Error" }
                "503": { $ref: "#/components/responses/ApiDisabled" }
            put:
              summary: Apply a sequence definition (`seqd sequence apply`); a changed definition becomes a new version
              description: |
                The body is the sequence file itself, as JSON (or YAML, with Content-Type application/yaml); its
                name must be the path's. The same content again changes nothing (200, the version it already
                has), so a retried PUT is safe. With If-Match (the ETag of GET), the change applies only if the
                latest version is still that one, else 412 and nothing changes.
              security: [{ bearer: [] }]
              parameters:
                - { name: If-Match, in: header, required: false, schema: { type: string, pattern: '^"v[0-9]{1,9}"$' } }
              requestBody:
                required: true
                content:
                  application/json:
                    schema: { type: object }
              responses:
                "201": { description: "a new version: {name, version, created: true}, with its ETag" }
                "200": { description: "unchanged: {name, version, created: false}" }
                "412": { description: "If-Match names a version that is no longer the latest", content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } } }
                "422": { description: "invalid_sequence: the definition's issues, each with its path", content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } } }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "503": { $ref: "#/components/responses/ApiDisabled" }
          /v1/sequences/{name}/pause:
            post:
              summary: Pause a whole sequence; its enrollments keep their place (`seqd sequence pause`)
              security: [{ bearer: [] }]
              parameters:
                - { name: name, in: path, required: true, schema: { type: string, minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9_-]*$' } }
              responses:
                "200":
                  description: paused
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/SequencePause" }
                "409": { $ref: "#/components/responses/Error" }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "404": { $ref: "#/components/responses/Error" }
                "503": { $ref: "#/components/responses/ApiDisabled" }
          /v1/sequences/{name}/resume:
            post:
              summary: Resume a paused sequence; waits shift by the pause's length (`seqd sequence resume`)
              security: [{ bearer: [] }]
              parameters:
                - { name: name, in: path, required: true, schema: { type: string, minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9_-]*$' } }
              responses:
                "200":
                  description: resumed
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/SequencePause" }
                "409": { $ref: "#/components/responses/Error" }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "404": { $ref: "#/components/responses/Error" }
                "503": { $ref: "#/components/responses/ApiDisabled" }
          /v1/enrollments/{id}:
            get:
              summary: One enrollment with its state, deliveries and full history
              security: [{ bearer: [] }]
              parameters:
                - { name: id, in: path, required: true, schema: { type: integer, format: int64, minimum: 1, maximum: 9223372036854775807 } }
              responses:
                "200":
                  description: the enrollment
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/Enrollment" }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "404": { $ref: "#/components/responses/Error" }
                "503": { $ref: "#/components/responses/ApiDisabled" }
          /v1/enrollments/{id}/deliveries:
            get:
              summary: The deliveries of one enrollment
              security: [{ bearer: [] }]
              parameters:
                - { name: id, in: path, required: true, schema: { type: integer, format: int64, minimum: 1, maximum: 9223372036854775807 } }
              responses:
                "200":
                  description: its deliveries, oldest first
                  content:
                    application/json:
                      schema: { type: object, properties: { enrollment_id: { type: integer }, deliveries: { type: array, items: { $ref: "#/components/schemas/Delivery" } } } }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "404": { $ref: "#/components/responses/Error" }
                "503": { $ref: "#/components/responses/ApiDisabled" }
          /v1/status:
            get:
              summary: Enrollment counts per sequence, version, step and status, and the due backlog (`seqd status`)
              security: [{ bearer: [] }]
              parameters:
                - { name: sequence, in: query, required: false, schema: { type: string, minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9_-]*$' } }
              responses:
                "200":
                  description: the counts
                  content:
                    application/json:
                      schema: { type: object, properties: { at: { type: string, format: date-time }, due_backlog: { type: integer }, oldest_due_seconds: { type: number }, warning: { type: [string, "null"] }, counts: { type: array, items: { type: object, properties: { sequence: { type: string }, version: { type: integer }, step: { type: string }, status: { type: string }, count: { type: integer } } } } } }
                "400": { $ref: "#/components/responses/Error" }
                "404": { description: no sequence of that name, content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } } }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "503": { $ref: "#/components/responses/ApiDisabled" }
          /v1/sending:
            get:
              summary: Whether sending is paused installation-wide (`seqd sending status`)
              security: [{ bearer: [] }]
              responses:
                "200":
                  description: the switch
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/SendSwitch" }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "503": { $ref: "#/components/responses/ApiDisabled" }
            put:
              summary: Pause or resume all sending (`seqd sending pause|resume`); idempotent
              security: [{ bearer: [] }]
              requestBody:
                required: true
                content:
                  application/json:
                    schema: { type: object, additionalProperties: false, required: [paused], properties: { paused: { type: boolean } } }
              responses:
                "200":
                  description: the switch as it now is
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/SendSwitch" }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "503": { $ref: "#/components/responses/ApiDisabled" }
          /v1/signals:
            post:
              summary: Reply, opt-out, bounce, pause, resume or stop, through the same state machine as the CLI
              description: |
                Signals that stop mail (reply, opt_out, bounce, pause, stop) answer only after a send of
                that contact already under way has settled, or the wait (delivery.lease_timeout plus a
                margin) ran out (then in_flight_settled is false).
              security: [{ bearer: [] }]
              requestBody:
                required: true
                content:
                  application/json:
                    schema: { $ref: "#/components/schemas/Signal" }
              responses:
                "200":
                  description: applied (individual enrollments may still report a refusal)
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/SignalResult" }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "404": { description: "unknown contact, enrollment, or no enrollment to act on", content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } } }
                "409": { description: "invalid_transition or no_live_enrollment, with the current status", content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } } }
                "422": { $ref: "#/components/responses/Error" }
                "503": { $ref: "#/components/responses/ApiDisabled" }
          /v1/inbound:
            post:
              summary: A raw inbound email (reply, bounce report, auto-reply), handled exactly as `seqd inbound`
              description: |
                The body is the raw RFC 5322 message (CRLF or LF line ends), e.g. from a mail system's
                inbound webhook. It is matched by In-Reply-To/References (for a delivery status report,
                the returned original's Message-ID) to seqd's deliveries, falling back to the sender's
                address and the sequence's sender address. A 5.x.x report bounces (suppresses) the
                Final-Recipient; a 4.x.x report, a read receipt or a non-standard bounce is ignored (200,
                outcome "ignored"); an auto-reply pauses until the stated return date or for
                inbound.ooo_resume_after; anything else is a reply. Like /v1/signals, a reply or bounce
                answers only after a send already under way has settled.
              security: [{ bearer: [] }]
              requestBody:
                required: true
                content:
                  message/rfc822:
                    schema: { type: string }
              responses:
                "200":
                  description: applied, or deliberately ignored
                  content:
                    application/json:
                      schema: { $ref: "#/components/schemas/InboundResult" }
                "400": { description: "malformed_message: the error names the line (also in \"line\")", content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } } }
                "401": { $ref: "#/components/responses/Unauthorized" }
                "409": { description: "refused: every matched enrollment refused the event (e.g. already finished; \"status\" names it), with the InboundResult fields", content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } } }
                "413": { $ref: "#/components/responses/Error" }
                "422": { description: "unmatched: nothing of seqd's matched; nothing changed; with the InboundResult fields", content: { application/json: { schema: { $ref: "#/components/schemas/Error" } } } }
                "503": { $ref: "#/components/responses/ApiDisabled" }
          /u/{token}:
            parameters:
              - { name: token, in: path, required: true, schema: { type: string } }
            get:
              summary: A page with a button that confirms the unsubscribe
              responses:
                "200": { $ref: "#/components/responses/Page" }
                "404": { description: "the link is malformed, tampered with or unknown (reveals nothing else)", content: { text/html: {} } }
            post:
              summary: RFC 8058 one-click unsubscribe
              description: Suppresses the address and ends its live enrollments before answering. Idempotent.
              requestBody:
                required: true
                content:
                  application/x-www-form-urlencoded:
                    schema:
                      type: object
                      required: [List-Unsubscribe]
                      properties:
                        List-Unsubscribe: { type: string, enum: [One-Click] }
                  multipart/form-data:
                    schema:
                      type: object
                      required: [List-Unsubscribe]
                      properties:
                        List-Unsubscribe: { type: string, enum: [One-Click] }
              responses:
                "200": { $ref: "#/components/responses/Page" }
                "400": { description: "a body without List-Unsubscribe=One-Click", content: { text/html: {} } }
                "404": { description: "the link is malformed, tampered with or unknown (reveals nothing else)", content: { text/html: {} } }
                "503": { $ref: "#/components/responses/Error" }
          /c/{token}:
            parameters:
              - { name: token, in: path, required: true, schema: { type: string } }
            get:
              summary: A tracked link (tracking.clicks) that records the click and redirects
              description: >-
                Redirects only to the URL the token signed. The click is recorded against the email
                it was sent in, as a person's or, when it looks like a link scanner's (within seconds
                of the send, or on the message's hidden decoy link), flagged as such.
              responses:
                "302":
                  description: the click is recorded (unless its email is unknown or its contact erased); Location is the signed URL
                  headers:
                    Location: { schema: { type: string } }
                "404": { description: "the link is malformed, tampered with or signed by another installation (reveals nothing else)", content: { text/html: {} } }
            head:
              summary: The same as GET, recorded as a link scanner's probe
              responses:
                "302":
                  description: the probe is recorded as a scanner's; Location is the signed URL
                  headers:
                    Location: { schema: { type: string } }
                "404": { description: "the link is malformed, tampered with or signed by another installation" }
        """#
}
