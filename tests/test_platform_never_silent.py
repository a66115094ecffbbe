"""Issue 17, Build 2: the broker is never silently wrong.

Every parameter, member or option of ETSI GS CIM 009 that the broker does not implement is
refused with a ProblemDetails that names the feature (501, type OperationNotSupported), and a
name the specification does not have is a 400; the semantics that used to differ from a
production broker without a word (datasetId instances, the NGSI-LD Null, type changes in
batch updates, pick/omit, attrs on one entity, deleting a temporal representation) follow the
clause named in each test.
"""

from __future__ import annotations

import pytest
from platform_support import COURSE_LINK, NGSI, assert_problem, http_client
from sscity.platform import Broker

ENTITY = "urn:ngsi-ld:Vehicle:qolo-01"


@pytest.fixture
def http():
    broker = Broker(":memory:")
    with http_client(broker, Link=COURSE_LINK) as client:
        yield client
    broker.close()


def vehicle(**attrs) -> dict:
    return {"id": ENTITY, "type": "Vehicle",
            "speed": [{"type": "Property", "value": 1.0},
                      {"type": "Property", "value": 1.2, "datasetId": "urn:ngsi-ld:Dataset:gps"}],
            "name": {"type": "Property", "value": "Qolo 1"}, **attrs}


def create(http, entity) -> None:
    response = http.post(f"{NGSI}/entities", json=entity)
    assert response.status_code == 201, response.text


def speeds(http) -> dict:
    """datasetId (None: the default instance) -> value of the entity's speed instances."""
    speed = http.get(f"{NGSI}/entities/{ENTITY}").json().get("speed", [])
    return {item.get("datasetId"): item["value"] for item in (speed if isinstance(speed, list) else [speed])}


# -- refused, not ignored -------------------------------------------------------------------

@pytest.mark.parametrize(("path", "params"), [
    ("/entities", {"type": "Vehicle", "scopeQ": "/Tsukuba"}),
    ("/temporal/entities", {"type": "Vehicle", "lang": "ja"}),
    ("/entities", {"type": "Vehicle", "orderBy": "speed"}),
    ("/entities", {"type": "Vehicle", "join": "inline"}),
    ("/entities", {"type": "Vehicle", "datasetId": "urn:ngsi-ld:Dataset:gps"}),
    ("/entities", {"type": "Vehicle", "geometryProperty": "location"}),
    ("/entities", {"type": "Vehicle", "csf": "x==1"}),
    (f"/entities/{ENTITY}", {"scopeQ": "/Tsukuba"}),
    ("/types", {"details": "true"}),
    ("/temporal/entities", {"type": "Vehicle", "options": "audit"}),  # aggregatedValues: temporal_ops
    ("/entities", {"type": "Vehicle", "options": "concise"}),
    ("/entities", {"type": "Vehicle", "format": "concise"}),
])
def test_specified_features_the_broker_lacks_are_501_naming_the_feature(http, path, params):
    create(http, vehicle())
    body = assert_problem(http.get(NGSI + path, params=params), 501, "OperationNotSupported")
    assert "not implemented" in body["detail"]
    assert "ETSI GS CIM 009" in body["detail"]


@pytest.mark.parametrize(("path", "params", "named"), [
    ("/entities", {"tpye": "Vehicle"}, "tpye"),  # a typo no longer returns every entity
    ("/entities", {"type": "Vehicle", "Limit": "5"}, "Limit"),
    (f"/entities/{ENTITY}", {"offset": "1"}, "offset"),
    ("/subscriptions", {"type": "Vehicle"}, "type"),
    ("/entities", {"type": "Vehicle", "options": "keyvalues"}, "keyvalues"),
])
def test_unknown_parameters_and_options_are_400_naming_them(http, path, params, named):
    create(http, vehicle())
    body = assert_problem(http.get(NGSI + path, params=params), 400, "BadRequestData")
    assert named in body["detail"]


def test_unknown_parameter_on_a_write_is_refused_and_nothing_is_written(http):
    response = http.post(f"{NGSI}/entities", params={"options": "upsert"}, json=vehicle())
    assert_problem(response, 400, "BadRequestData")
    assert http.get(f"{NGSI}/entities/{ENTITY}").status_code == 404


def test_scope_on_create_is_refused_not_dropped(http):
    # Clause 4.18: a production broker keeps the scope and answers scopeQ with it.
    body = assert_problem(http.post(f"{NGSI}/entities", json=vehicle(scope="/Tsukuba/Sakura")), 501,
                          "OperationNotSupported")
    assert "scope" in body["detail"]
    assert http.get(f"{NGSI}/entities/{ENTITY}").status_code == 404


@pytest.mark.parametrize(("member", "value"), [
    ("scopeQ", "/Tsukuba"), ("lang", "ja"),
    ("temporalQ", {"timerel": "after", "timeAt": "2024-05-01T00:00:00Z"}),
])
def test_subscription_members_the_broker_lacks_are_501(http, member, value):
    subscription = {"type": "Subscription", "entities": [{"type": "Vehicle"}],
                    "notification": {"endpoint": {"uri": "sscity:inbox/test"}}, member: value}
    assert_problem(http.post(f"{NGSI}/subscriptions", json=subscription), 501, "OperationNotSupported")


def test_unknown_subscription_members_and_concise_notifications_are_refused(http):
    base = {"type": "Subscription", "entities": [{"type": "Vehicle"}],
            "notification": {"endpoint": {"uri": "sscity:inbox/test"}}}
    assert_problem(http.post(f"{NGSI}/subscriptions", json={**base, "watchedAtributes": ["speed"]}), 400,
                   "BadRequestData")
    concise = {**base, "notification": {"endpoint": {"uri": "sscity:inbox/test"}, "format": "concise"}}
    assert_problem(http.post(f"{NGSI}/subscriptions", json=concise), 501, "OperationNotSupported")


# -- datasetId: several instances of one attribute (clause 4.5.5) -----------------------------

def test_update_without_dataset_id_changes_only_the_default_instance(http):
    create(http, vehicle())
    default = {"speed": {"type": "Property", "value": 2.0}}
    response = http.patch(f"{NGSI}/entities/{ENTITY}/attrs", json=default)
    assert response.status_code == 204, response.text
    assert speeds(http) == {None: 2.0, "urn:ngsi-ld:Dataset:gps": 1.2}


def test_append_with_a_new_dataset_id_adds_an_instance(http):
    create(http, vehicle())
    extra = {"speed": {"type": "Property", "value": 0.9, "datasetId": "urn:ngsi-ld:Dataset:wheel"}}
    assert http.post(f"{NGSI}/entities/{ENTITY}/attrs", json=extra).status_code == 204
    assert speeds(http) == {None: 1.0, "urn:ngsi-ld:Dataset:gps": 1.2, "urn:ngsi-ld:Dataset:wheel": 0.9}


def test_update_of_a_missing_instance_is_reported_not_written(http):
    create(http, vehicle())
    missing = {"speed": {"type": "Property", "value": 5.0, "datasetId": "urn:ngsi-ld:Dataset:none"}}
    response = http.patch(f"{NGSI}/entities/{ENTITY}/attrs", json=missing)
    assert response.status_code == 207
    assert response.json()["notUpdated"][0]["attributeName"] == "speed"
    assert speeds(http) == {None: 1.0, "urn:ngsi-ld:Dataset:gps": 1.2}


def test_delete_attribute_without_dataset_id_deletes_the_default_instance_only(http):
    # Clause 5.6.5: all instances go only with deleteAll=true.
    create(http, vehicle())
    assert http.delete(f"{NGSI}/entities/{ENTITY}/attrs/speed").status_code == 204
    assert speeds(http) == {"urn:ngsi-ld:Dataset:gps": 1.2}
    assert_problem(http.delete(f"{NGSI}/entities/{ENTITY}/attrs/speed"), 404, "ResourceNotFound")
    assert http.delete(f"{NGSI}/entities/{ENTITY}/attrs/speed",
                       params={"deleteAll": "true"}).status_code == 204
    assert "speed" not in http.get(f"{NGSI}/entities/{ENTITY}").json()


def test_partial_update_picks_the_instance_by_dataset_id(http):
    create(http, vehicle())
    gps = {"value": 1.5, "datasetId": "urn:ngsi-ld:Dataset:gps"}
    assert http.patch(f"{NGSI}/entities/{ENTITY}/attrs/speed", json=gps).status_code == 204
    assert http.patch(f"{NGSI}/entities/{ENTITY}/attrs/speed", json={"value": 0.5}).status_code == 204
    assert speeds(http) == {None: 0.5, "urn:ngsi-ld:Dataset:gps": 1.5}


def test_batch_update_merges_instances_by_dataset_id(http):
    create(http, vehicle())
    update = [{"id": ENTITY, "type": "Vehicle", "speed": {"type": "Property", "value": 3.0}}]
    for path, params in (("update", {}), ("upsert", {"options": "update"})):
        assert http.post(f"{NGSI}/entityOperations/{path}", params=params, json=update).status_code == 204
        assert speeds(http) == {None: 3.0, "urn:ngsi-ld:Dataset:gps": 1.2}


# -- the NGSI-LD Null deletes; a type is never replaced silently -----------------------------

def test_ngsi_ld_null_deletes_the_attribute_in_updates(http):
    create(http, vehicle())
    null = {"type": "Property", "value": "urn:ngsi-ld:null"}
    assert http.patch(f"{NGSI}/entities/{ENTITY}/attrs", json={"name": null}).status_code == 204
    assert "name" not in http.get(f"{NGSI}/entities/{ENTITY}").json()
    gps_null = {"value": "urn:ngsi-ld:null", "datasetId": "urn:ngsi-ld:Dataset:gps"}
    assert http.patch(f"{NGSI}/entities/{ENTITY}/attrs/speed", json=gps_null).status_code == 204
    assert speeds(http) == {None: 1.0}
    batch = [{"id": ENTITY, "speed": "urn:ngsi-ld:null"}]
    assert http.post(f"{NGSI}/entityOperations/update", json=batch).status_code == 204
    assert "speed" not in http.get(f"{NGSI}/entities/{ENTITY}").json()


def test_ngsi_ld_null_in_a_new_entity_is_400_not_stored(http):
    body = assert_problem(http.post(f"{NGSI}/entities", json=vehicle(name="urn:ngsi-ld:null")), 400,
                          "BadRequestData")
    assert "urn:ngsi-ld:null" in body["detail"]
    assert http.get(f"{NGSI}/entities/{ENTITY}").status_code == 404


def test_batch_update_with_another_type_is_refused_and_keeps_the_type(http):
    create(http, vehicle())
    other = [{"id": ENTITY, "type": "Building", "name": {"type": "Property", "value": "x"}}]
    for path, params in (("update", {}), ("upsert", {"options": "update"})):
        response = http.post(f"{NGSI}/entityOperations/{path}", params=params, json=other)
        assert response.status_code == 207, response.text
        error = response.json()["errors"][0]["error"]
        assert error["status"] == 501 and "Building" in error["detail"]
        entity = http.get(f"{NGSI}/entities/{ENTITY}").json()
        assert entity["type"] == "Vehicle" and entity["name"]["value"] == "Qolo 1"


# -- attrs, pick and omit ----------------------------------------------------------------------

def test_attrs_naming_none_of_the_entitys_attributes_is_404(http):
    create(http, vehicle())
    assert_problem(http.get(f"{NGSI}/entities/{ENTITY}", params={"attrs": "nosuch"}), 404,
                   "ResourceNotFound")
    assert set(http.get(f"{NGSI}/entities/{ENTITY}", params={"attrs": "name,nosuch"}).json()) == \
        {"id", "type", "name"}


@pytest.mark.parametrize("attrs", ["id,type", "id", "name,type"])
def test_attrs_naming_id_or_type_is_400(http, attrs):
    create(http, vehicle())
    assert_problem(http.get(f"{NGSI}/entities/{ENTITY}", params={"attrs": attrs}), 400, "BadRequestData")


def test_pick_and_omit_shape_the_output(http):
    create(http, vehicle())
    one = f"{NGSI}/entities/{ENTITY}"
    assert set(http.get(one, params={"pick": "id,name"}).json()) == {"id", "name"}
    assert set(http.get(one, params={"omit": "type,speed"}).json()) == {"id", "name"}
    listed = http.get(f"{NGSI}/entities", params={"type": "Vehicle", "pick": "name",
                                                  "options": "keyValues"}).json()
    assert listed == [{"name": "Qolo 1"}]
    assert_problem(http.get(one, params={"pick": "name", "omit": "speed"}), 400, "BadRequestData")


# -- temporal ------------------------------------------------------------------------------------

def test_deleting_the_temporal_representation_deletes_the_entity(http):
    create(http, vehicle())
    assert http.delete(f"{NGSI}/temporal/entities/{ENTITY}").status_code == 204
    assert_problem(http.get(f"{NGSI}/entities/{ENTITY}"), 404, "ResourceNotFound")


# -- operations Orion-LD users meet ------------------------------------------------------------

def test_merge_patch_merges_deletes_with_null_and_404s_a_missing_entity(http):
    create(http, vehicle())
    patch = {"name": "urn:ngsi-ld:null", "battery": {"type": "Property", "value": 0.8},
             "speed": {"type": "Property", "value": 0.7}}
    for media in ("application/json", "application/merge-patch+json"):
        response = http.patch(f"{NGSI}/entities/{ENTITY}", json=patch, headers={"Content-Type": media})
        assert response.status_code == 204, response.text
    entity = http.get(f"{NGSI}/entities/{ENTITY}").json()
    assert "name" not in entity and entity["battery"]["value"] == 0.8
    assert speeds(http) == {None: 0.7, "urn:ngsi-ld:Dataset:gps": 1.2}
    assert_problem(http.patch(f"{NGSI}/entities/urn:ngsi-ld:Vehicle:none", json=patch), 404,
                   "ResourceNotFound")
    assert_problem(http.patch(f"{NGSI}/entities/{ENTITY}", json={"type": "Building"}), 501,
                   "OperationNotSupported")


def test_replace_entity_and_attribute(http):
    create(http, vehicle())
    created = http.get(f"{NGSI}/entities/{ENTITY}", params={"options": "sysAttrs"}).json()["createdAt"]
    replacement = {"battery": {"type": "Property", "value": 0.5}}
    assert http.put(f"{NGSI}/entities/{ENTITY}", json=replacement).status_code == 204
    entity = http.get(f"{NGSI}/entities/{ENTITY}", params={"options": "sysAttrs"}).json()
    assert set(entity) == {"id", "type", "battery", "createdAt", "modifiedAt"}
    assert entity["type"] == "Vehicle" and entity["createdAt"] == created
    assert http.put(f"{NGSI}/entities/{ENTITY}/attrs/battery",
                    json={"type": "Property", "value": 0.4}).status_code == 204
    assert http.get(f"{NGSI}/entities/{ENTITY}").json()["battery"]["value"] == 0.4
    assert_problem(http.put(f"{NGSI}/entities/{ENTITY}/attrs/nosuch", json={"value": 1}), 404,
                   "ResourceNotFound")
    assert_problem(http.put(f"{NGSI}/entities/urn:ngsi-ld:Vehicle:none", json=replacement), 404,
                   "ResourceNotFound")


def test_purge_deletes_only_the_matching_entities_and_needs_a_filter(http):
    create(http, vehicle())
    other = {"id": "urn:ngsi-ld:Building:1", "type": "Building", "name": {"type": "Property", "value": "b"}}
    create(http, other)
    assert_problem(http.delete(f"{NGSI}/entities"), 400, "BadRequestData")
    assert http.delete(f"{NGSI}/entities", params={"type": "Vehicle"}).status_code == 204
    assert [e["id"] for e in http.get(f"{NGSI}/entities", params={"type": "Vehicle,Building"}).json()] == \
        ["urn:ngsi-ld:Building:1"]


def test_post_query_and_batch_merge(http):
    create(http, vehicle())
    query = {"type": "Query", "entities": [{"type": "Vehicle"}], "q": "name==\"Qolo 1\"",
             "attrs": ["name"]}
    found = http.post(f"{NGSI}/entityOperations/query", json=query)
    assert found.status_code == 200, found.text
    name = {"type": "Property", "value": "Qolo 1"}
    assert found.json() == [{"id": ENTITY, "type": "Vehicle", "name": name}]
    assert http.post(f"{NGSI}/entityOperations/query",
                     json={**query, "q": "name==\"other\""}).json() == []
    assert_problem(http.post(f"{NGSI}/entityOperations/query", json={**query, "scopeQ": "/a"}), 501,
                   "OperationNotSupported")
    merge = [{"id": ENTITY, "name": {"type": "Property", "value": "Qolo 1b"}}]
    assert http.post(f"{NGSI}/entityOperations/merge", json=merge).status_code == 204
    assert http.get(f"{NGSI}/entities/{ENTITY}").json()["name"]["value"] == "Qolo 1b"
    missing = [{"id": "urn:ngsi-ld:Vehicle:none", "name": "x"}]
    assert http.post(f"{NGSI}/entityOperations/merge", json=missing).status_code == 207


def test_type_and_attribute_information(http):
    create(http, vehicle())
    info = http.get(f"{NGSI}/types/Vehicle").json()
    assert info["typeName"] == "Vehicle" and info["entityCount"] == 1
    assert {d["attributeName"]: d["attributeTypes"] for d in info["attributeDetails"]} == \
        {"name": ["Property"], "speed": ["Property"]}
    assert_problem(http.get(f"{NGSI}/types/Building"), 404, "ResourceNotFound")
    assert http.get(f"{NGSI}/attributes").json()["attributeList"] == ["name", "speed"]
    speed = http.get(f"{NGSI}/attributes/speed").json()
    assert speed["attributeCount"] == 1 and speed["typeNames"] == ["Vehicle"]


@pytest.mark.parametrize(("method", "path"), [
    # (the temporal attribute and instance operations, 5.6.12-5.6.15, are tested in
    # test_platform_temporal_ops)
    ("GET", "/csourceRegistrations"),
    ("POST", "/entityMaps"),
])
def test_operations_the_broker_lacks_are_501_naming_them(http, method, path):
    create(http, vehicle())
    response = http.request(method, NGSI + path, json={}, headers={"Content-Type": "text/plain"})
    body = assert_problem(response, 501, "OperationNotSupported")
    assert "clause" in body["detail"]


def test_mqtt_over_tls_and_other_endpoint_members_are_501(http):
    # mqtt:// endpoints work (test_platform_notifications.py); TLS and the endpoint's timeout and
    # cooldown (clause 5.2.15) are not built.
    for endpoint in ({"uri": "mqtts://localhost:8883/city"},
                     {"uri": "sscity:inbox/test", "timeout": 1000},
                     {"uri": "sscity:inbox/test", "cooldown": 1000}):
        subscription = {"type": "Subscription", "entities": [{"type": "Vehicle"}],
                        "notification": {"endpoint": endpoint}}
        assert_problem(http.post(f"{NGSI}/subscriptions", json=subscription), 501, "OperationNotSupported")


def test_lang_gives_one_language_of_a_language_property(http):
    names = {"type": "LanguageProperty", "languageMap": {"ja": "キューボ", "en": "Qolo", "@none": "Qolo"}}
    create(http, vehicle(label=names))
    one = f"{NGSI}/entities/{ENTITY}"
    assert http.get(one, params={"lang": "ja"}).json()["label"] == {"type": "Property", "value": "キューボ",
                                                                    "lang": "ja"}
    assert http.get(one, params={"lang": "fr,ja;q=0.4,en;q=0.9", "options": "keyValues"}).json()["label"] == \
        "Qolo"  # no French: English is preferred to Japanese
    assert http.get(one, params={"lang": "fr"}).json()["label"] == {"type": "Property", "value": "Qolo"}
    assert http.get(one).json()["label"]["languageMap"]["ja"] == "キューボ"  # without lang: the map
    listed = http.get(f"{NGSI}/entities", params={"type": "Vehicle", "lang": "ja", "options": "keyValues"})
    assert listed.json()[0]["label"] == "キューボ"
    for bad in ("ja;q=2", "日本語", "en;;q=1", ""):
        assert_problem(http.get(one, params={"lang": bad}), 400, "BadRequestData")
