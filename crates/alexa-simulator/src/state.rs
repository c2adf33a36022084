//! The simulator's world: vendors and their skills, LWA clients, refresh tokens, customers and
//! their codes. [`SimState`] is the YAML file format (`--state FILE`) and the documented sandbox;
//! [`Store`] is the indexed run-time form, O(1) per request so the benchmark can hold thousands
//! of skills.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::Region;
use crate::Stage;
use crate::account_linking;

/// Names and secrets of the default sandbox state, so tests and docs agree on them. All are
/// obvious placeholders, never real credentials.
pub mod sandbox {
    use crate::Region;

    /// Vendor (developer account) that owns the sandbox skills.
    pub const VENDOR_ID: &str = "M2SANDBOXVENDOR";
    /// A second vendor, to test access to someone else's skill (403).
    pub const OTHER_VENDOR_ID: &str = "M2OTHERVENDOR";
    /// Main sandbox skill: both stages, no account linking, not enabled.
    pub const SKILL_ID: &str = "amzn1.ask.skill.00000000-0000-0000-0000-000000000001";
    /// Second skill of the sandbox vendor: both stages, account linking preset on development.
    pub const SKILL_ID_2: &str = "amzn1.ask.skill.00000000-0000-0000-0000-000000000002";
    /// Skill of the sandbox vendor with only a development stage (live → 404).
    pub const DEV_ONLY_SKILL_ID: &str = "amzn1.ask.skill.00000000-0000-0000-0000-000000000003";
    /// Skill owned by [`OTHER_VENDOR_ID`].
    pub const OTHER_VENDOR_SKILL_ID: &str = "amzn1.ask.skill.00000000-0000-0000-0000-000000000004";
    /// LWA client (security profile) of the sandbox vendor.
    pub const CLIENT_ID: &str = "sandbox-client-id";
    /// Secret of [`CLIENT_ID`].
    pub const CLIENT_SECRET: &str = "sandbox-client-secret";
    /// Developer refresh token of the sandbox vendor, issued to [`CLIENT_ID`].
    pub const REFRESH_TOKEN: &str = "Atzr|sandbox-refresh-token";
    /// LWA client of the other vendor.
    pub const CLIENT_ID_2: &str = "sandbox-client-id-2";
    /// Secret of [`CLIENT_ID_2`].
    pub const CLIENT_SECRET_2: &str = "sandbox-client-secret-2";
    /// Developer refresh token of the other vendor, issued to [`CLIENT_ID_2`].
    pub const REFRESH_TOKEN_2: &str = "Atzr|sandbox-refresh-token-2";
    /// LWA authorization code (single-use) for the sandbox vendor and [`CLIENT_ID`].
    pub const VENDOR_LWA_CODE: &str = "sandbox-vendor-lwa-code";

    /// Name of the sandbox customer living in a region.
    pub fn customer(region: Region) -> &'static str {
        match region {
            Region::Na => "na-customer",
            Region::Eu => "eu-customer",
            Region::Fe => "fe-customer",
        }
    }

    /// Alexa user id of the sandbox customer living in a region.
    pub fn user_id(region: Region) -> &'static str {
        match region {
            Region::Na => "amzn1.ask.account.SANDBOX-NA-CUSTOMER",
            Region::Eu => "amzn1.ask.account.SANDBOX-EU-CUSTOMER",
            Region::Fe => "amzn1.ask.account.SANDBOX-FE-CUSTOMER",
        }
    }

    /// LWA refresh token of a region's sandbox customer, issued to [`CLIENT_ID`] (the partner
    /// app's security profile).
    pub fn customer_refresh_token(region: Region) -> &'static str {
        match region {
            Region::Na => "Atzr|sandbox-na-customer-refresh-token",
            Region::Eu => "Atzr|sandbox-eu-customer-refresh-token",
            Region::Fe => "Atzr|sandbox-fe-customer-refresh-token",
        }
    }

    /// Partner authorization code `n` (1..=5) of a region's sandbox customer: single-use.
    pub fn partner_code(region: Region, n: u8) -> String {
        format!("{}-partner-code-{n}", region.as_str().to_ascii_lowercase())
    }

    /// LWA authorization code `n` (1..=3) of a region's sandbox customer, for [`CLIENT_ID`].
    pub fn customer_lwa_code(region: Region, n: u8) -> String {
        format!("{}-lwa-code-{n}", region.as_str().to_ascii_lowercase())
    }
}

/// The whole world as the state file declares it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimState {
    /// Developer accounts with their skills and developer refresh tokens. The first one is the
    /// default owner of skills added at run time.
    #[serde(default)]
    pub vendors: Vec<VendorState>,
    /// LWA clients (security profiles): id and secret.
    #[serde(default)]
    pub lwa_clients: Vec<LwaClientState>,
    /// Amazon customers (Alexa users) for the customer enablement API.
    #[serde(default)]
    pub customers: Vec<CustomerState>,
}

/// One developer account.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VendorState {
    /// Vendor id (appears in the generated redirect URLs).
    pub id: String,
    /// Skills the vendor owns.
    #[serde(default)]
    pub skills: Vec<SkillState>,
    /// Refresh tokens that act for this vendor (SMAPI access).
    #[serde(default)]
    pub refresh_tokens: Vec<RefreshTokenState>,
    /// Single-use LWA authorization codes that act for this vendor.
    #[serde(default)]
    pub lwa_auth_codes: Vec<LwaAuthCodeState>,
}

fn both_stages() -> Vec<Stage> {
    vec![Stage::Development, Stage::Live]
}

/// One skill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SkillState {
    /// Skill id (`amzn1.ask.skill....`).
    pub id: String,
    /// Stages the skill has (default both); others answer 404.
    #[serde(default = "both_stages")]
    pub stages: Vec<Stage>,
    /// Stage enabled for the owner's developer account, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_stage: Option<Stage>,
    /// Account linking per stage, in the accountLinkingRequest format (validated at load).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub account_linking: BTreeMap<Stage, Value>,
}

/// One LWA security profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LwaClientState {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
}

/// A refresh token and the LWA client it was issued to (it only works with that client).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshTokenState {
    /// The refresh token.
    pub token: String,
    /// LWA client the token was issued to.
    pub client_id: String,
}

/// A single-use LWA authorization code (`grant_type=authorization_code`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LwaAuthCodeState {
    /// The code.
    pub code: String,
    /// LWA client that may redeem it.
    pub client_id: String,
}

/// A skill already enabled for a customer at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnablementState {
    /// Skill id.
    pub skill_id: String,
    /// Stage enabled.
    pub stage: Stage,
}

/// One Amazon customer (Alexa user).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomerState {
    /// Name used in the admin API, the Rust API and the request log.
    pub name: String,
    /// Alexa user id returned in status bodies (default `amzn1.ask.account.<NAME>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Region the customer's account lives in; customer calls must go to its listener.
    pub region: Region,
    /// The customer's LWA refresh tokens (customer tokens work only on customer paths).
    #[serde(default)]
    pub refresh_tokens: Vec<RefreshTokenState>,
    /// Single-use LWA authorization codes for this customer (app-to-app flow).
    #[serde(default)]
    pub lwa_auth_codes: Vec<LwaAuthCodeState>,
    /// Single-use partner authorization codes customer enablement accepts.
    #[serde(default)]
    pub partner_auth_codes: Vec<String>,
    /// Skills already enabled for the customer.
    #[serde(default)]
    pub enablements: Vec<EnablementState>,
}

impl SimState {
    /// The documented default state (see `docs/SIMULATOR.md` and [`sandbox`]).
    pub fn sandbox() -> SimState {
        let preset = serde_json::json!({
            "type": "AUTH_CODE",
            "authorizationUrl": "https://auth.example.com/authorize",
            "accessTokenUrl": "https://auth.example.com/token",
            "accessTokenScheme": "HTTP_BASIC",
            "clientId": "example-alexa-client",
            "clientSecret": "example-alexa-client-secret",
            "scopes": ["profile"],
            "domains": [],
        });
        let skill = |id: &str| SkillState {
            id: id.to_string(),
            stages: both_stages(),
            enabled_stage: None,
            account_linking: BTreeMap::new(),
        };
        let mut skill_2 = skill(sandbox::SKILL_ID_2);
        skill_2.account_linking.insert(Stage::Development, preset);
        let mut dev_only = skill(sandbox::DEV_ONLY_SKILL_ID);
        dev_only.stages = vec![Stage::Development];
        let customers = Region::ALL
            .iter()
            .map(|region| CustomerState {
                name: sandbox::customer(*region).to_string(),
                user_id: Some(sandbox::user_id(*region).to_string()),
                region: *region,
                refresh_tokens: vec![RefreshTokenState {
                    token: sandbox::customer_refresh_token(*region).to_string(),
                    client_id: sandbox::CLIENT_ID.to_string(),
                }],
                lwa_auth_codes: (1..=3)
                    .map(|n| LwaAuthCodeState {
                        code: sandbox::customer_lwa_code(*region, n),
                        client_id: sandbox::CLIENT_ID.to_string(),
                    })
                    .collect(),
                partner_auth_codes: (1..=5).map(|n| sandbox::partner_code(*region, n)).collect(),
                enablements: Vec::new(),
            })
            .collect();
        SimState {
            vendors: vec![
                VendorState {
                    id: sandbox::VENDOR_ID.to_string(),
                    skills: vec![skill(sandbox::SKILL_ID), skill_2, dev_only],
                    refresh_tokens: vec![RefreshTokenState {
                        token: sandbox::REFRESH_TOKEN.to_string(),
                        client_id: sandbox::CLIENT_ID.to_string(),
                    }],
                    lwa_auth_codes: vec![LwaAuthCodeState {
                        code: sandbox::VENDOR_LWA_CODE.to_string(),
                        client_id: sandbox::CLIENT_ID.to_string(),
                    }],
                },
                VendorState {
                    id: sandbox::OTHER_VENDOR_ID.to_string(),
                    skills: vec![skill(sandbox::OTHER_VENDOR_SKILL_ID)],
                    refresh_tokens: vec![RefreshTokenState {
                        token: sandbox::REFRESH_TOKEN_2.to_string(),
                        client_id: sandbox::CLIENT_ID_2.to_string(),
                    }],
                    lwa_auth_codes: Vec::new(),
                },
            ],
            lwa_clients: vec![
                LwaClientState {
                    client_id: sandbox::CLIENT_ID.to_string(),
                    client_secret: sandbox::CLIENT_SECRET.to_string(),
                },
                LwaClientState {
                    client_id: sandbox::CLIENT_ID_2.to_string(),
                    client_secret: sandbox::CLIENT_SECRET_2.to_string(),
                },
            ],
            customers,
        }
    }

    /// Parses the YAML state-file format.
    pub fn from_yaml(text: &str) -> Result<SimState, String> {
        serde_saphyr::from_str(text).map_err(|err| err.to_string())
    }

    /// Renders the state in the YAML state-file format (what the CLI prints at startup).
    pub fn to_yaml(&self) -> Result<String, String> {
        serde_saphyr::to_string(self).map_err(|err| err.to_string())
    }
}

/// Who a credential acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    /// A developer account (SMAPI).
    Vendor(String),
    /// An Amazon customer, by name (customer APIs).
    Customer(String),
}

/// A refresh token or authorization code: which client may use it and for whom it acts.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) client_id: String,
    pub(crate) subject: Subject,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A customer's enablement of a skill, as the status body reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerEnablementRecord {
    /// Skill id.
    pub skill_id: String,
    /// Stage enabled (`development` or `live`).
    pub stage: String,
    /// Alexa user id of the customer.
    pub user_id: String,
    /// `accountLink.status` (`LINKED`).
    pub account_link_status: String,
    /// `status` (`ENABLED`).
    pub status: String,
    /// `redirectUri` the enablement request carried.
    pub redirect_uri: Option<String>,
    /// Status reads still answered `NOT_LINKED` before linking completes (see
    /// `FaultConfig::link_after_reads`); 0: linked.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reads_until_linked: u32,
}

impl CustomerEnablementRecord {
    /// An enablement with the account linked, as a successful enable request leaves it.
    pub(crate) fn linked(
        skill_id: &str,
        stage: Stage,
        user_id: String,
        redirect_uri: Option<String>,
    ) -> CustomerEnablementRecord {
        CustomerEnablementRecord {
            skill_id: skill_id.to_string(),
            stage: stage.as_str().to_string(),
            user_id,
            account_link_status: "LINKED".to_string(),
            status: "ENABLED".to_string(),
            redirect_uri,
            reads_until_linked: 0,
        }
    }

    /// The same enablement with linking completing only after `reads` status reads.
    pub(crate) fn linked_after(mut self, reads: u32) -> CustomerEnablementRecord {
        self.reads_until_linked = reads;
        self
    }

    /// The account link status a read shows now.
    fn link_status(&self) -> &str {
        if self.reads_until_linked > 0 {
            "NOT_LINKED"
        } else {
            &self.account_link_status
        }
    }

    /// The status body Amazon returns for this enablement.
    pub fn status_body(&self) -> Value {
        serde_json::json!({
            "skill": {"id": self.skill_id, "stage": self.stage},
            "user": {"id": self.user_id},
            "accountLink": {"status": self.link_status()},
            "status": self.status,
        })
    }
}

pub(crate) struct Linking {
    pub(crate) config: Map<String, Value>,
    pub(crate) etag: String,
}

#[derive(Default)]
pub(crate) struct StageSlot {
    pub(crate) account_linking: Option<Linking>,
}

pub(crate) struct Skill {
    pub(crate) vendor_id: String,
    pub(crate) development: Option<StageSlot>,
    pub(crate) live: Option<StageSlot>,
    pub(crate) enabled_stage: Option<Stage>,
}

impl Skill {
    fn new(vendor_id: &str, stages: &[Stage]) -> Skill {
        Skill {
            vendor_id: vendor_id.to_string(),
            development: stages
                .contains(&Stage::Development)
                .then(StageSlot::default),
            live: stages.contains(&Stage::Live).then(StageSlot::default),
            enabled_stage: None,
        }
    }

    pub(crate) fn stage(&self, stage: Stage) -> Option<&StageSlot> {
        match stage {
            Stage::Development => self.development.as_ref(),
            Stage::Live => self.live.as_ref(),
        }
    }

    pub(crate) fn stage_mut(&mut self, stage: Stage) -> Option<&mut StageSlot> {
        match stage {
            Stage::Development => self.development.as_mut(),
            Stage::Live => self.live.as_mut(),
        }
    }
}

pub(crate) struct Customer {
    pub(crate) user_id: String,
    pub(crate) region: Region,
    pub(crate) enablements: HashMap<String, CustomerEnablementRecord>,
}

/// Indexed run-time state. Every method is O(1) in the number of skills.
pub(crate) struct Store {
    default_vendor: String,
    pub(crate) skills: HashMap<String, Skill>,
    pub(crate) clients: HashMap<String, String>,
    pub(crate) refresh_tokens: HashMap<String, Grant>,
    pub(crate) lwa_codes: HashMap<String, Grant>,
    pub(crate) customers: HashMap<String, Customer>,
    pub(crate) partner_codes: HashMap<String, String>,
    etag_nonce: u64,
    etag_counter: u64,
}

impl Store {
    /// Builds the indexes, rejecting duplicates, dangling references and invalid account
    /// linking so a bad state file fails at start rather than mid-test.
    pub(crate) fn from_state(state: &SimState) -> Result<Store, String> {
        let default_vendor = state
            .vendors
            .first()
            .map(|v| v.id.clone())
            .unwrap_or_else(|| sandbox::VENDOR_ID.to_string());
        let mut store = Store::empty(default_vendor);
        for client in &state.lwa_clients {
            store.load_client(client)?;
        }
        let mut vendor_ids = HashSet::new();
        for vendor in &state.vendors {
            if vendor.id.is_empty() || !vendor_ids.insert(vendor.id.clone()) {
                return Err(format!("empty or duplicate vendor id {:?}", vendor.id));
            }
            store.load_vendor(vendor)?;
        }
        for customer in &state.customers {
            store.load_customer(customer)?;
        }
        Ok(store)
    }

    fn empty(default_vendor: String) -> Store {
        Store {
            default_vendor,
            skills: HashMap::new(),
            clients: HashMap::new(),
            refresh_tokens: HashMap::new(),
            lwa_codes: HashMap::new(),
            customers: HashMap::new(),
            partner_codes: HashMap::new(),
            etag_nonce: rand::random(),
            etag_counter: 0,
        }
    }

    fn load_client(&mut self, client: &LwaClientState) -> Result<(), String> {
        if self
            .clients
            .insert(client.client_id.clone(), client.client_secret.clone())
            .is_some()
        {
            return Err(format!("duplicate LWA client {}", client.client_id));
        }
        Ok(())
    }

    fn load_vendor(&mut self, vendor: &VendorState) -> Result<(), String> {
        for skill in &vendor.skills {
            self.load_skill(&vendor.id, skill)?;
        }
        let subject = Subject::Vendor(vendor.id.clone());
        self.load_grants(&subject, &vendor.refresh_tokens, &vendor.lwa_auth_codes)
    }

    /// A customer with the enablements of known skills, its grants and its single-use
    /// partner codes (each code belongs to one customer).
    fn load_customer(&mut self, customer: &CustomerState) -> Result<(), String> {
        if customer.name.is_empty() || self.customers.contains_key(&customer.name) {
            return Err(format!("empty or duplicate customer {:?}", customer.name));
        }
        let user_id = customer
            .user_id
            .clone()
            .unwrap_or_else(|| format!("amzn1.ask.account.{}", customer.name.to_ascii_uppercase()));
        let mut enablements = HashMap::new();
        for enablement in &customer.enablements {
            if !self.skills.contains_key(&enablement.skill_id) {
                return Err(format!(
                    "customer {} has an enablement of unknown skill {}",
                    customer.name, enablement.skill_id
                ));
            }
            enablements.insert(
                enablement.skill_id.clone(),
                CustomerEnablementRecord::linked(
                    &enablement.skill_id,
                    enablement.stage,
                    user_id.clone(),
                    None,
                ),
            );
        }
        self.customers.insert(
            customer.name.clone(),
            Customer {
                user_id,
                region: customer.region,
                enablements,
            },
        );
        let subject = Subject::Customer(customer.name.clone());
        self.load_grants(&subject, &customer.refresh_tokens, &customer.lwa_auth_codes)?;
        for code in &customer.partner_auth_codes {
            if self
                .partner_codes
                .insert(code.clone(), customer.name.clone())
                .is_some()
            {
                return Err(format!("duplicate partner auth code for {}", customer.name));
            }
        }
        Ok(())
    }

    fn load_skill(&mut self, vendor_id: &str, skill: &SkillState) -> Result<(), String> {
        if skill.id.is_empty() || skill.id.len() > 255 || self.skills.contains_key(&skill.id) {
            return Err(format!(
                "skill id {:?} is empty, too long or duplicate",
                skill.id
            ));
        }
        let mut entry = Skill::new(vendor_id, &skill.stages);
        entry.enabled_stage = skill.enabled_stage;
        for (stage, config) in &skill.account_linking {
            let config = account_linking::validate(config).map_err(|violations| {
                format!(
                    "account linking of skill {} stage {}: {}",
                    skill.id,
                    stage,
                    violations
                        .iter()
                        .map(|v| v.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })?;
            let etag = self.new_etag(&skill.id, stage.as_str());
            let Some(slot) = entry.stage_mut(*stage) else {
                return Err(format!(
                    "skill {} has account linking for stage {} it does not have",
                    skill.id, stage
                ));
            };
            slot.account_linking = Some(Linking { config, etag });
        }
        self.skills.insert(skill.id.clone(), entry);
        Ok(())
    }

    fn load_grants(
        &mut self,
        subject: &Subject,
        tokens: &[RefreshTokenState],
        codes: &[LwaAuthCodeState],
    ) -> Result<(), String> {
        for token in tokens {
            if !self.clients.contains_key(&token.client_id) {
                return Err(format!(
                    "a refresh token refers to unknown LWA client {}",
                    token.client_id
                ));
            }
            let grant = Grant {
                client_id: token.client_id.clone(),
                subject: subject.clone(),
            };
            if self
                .refresh_tokens
                .insert(token.token.clone(), grant)
                .is_some()
            {
                return Err("duplicate refresh token".to_string());
            }
        }
        for code in codes {
            if !self.clients.contains_key(&code.client_id) {
                return Err(format!(
                    "an LWA authorization code refers to unknown LWA client {}",
                    code.client_id
                ));
            }
            let grant = Grant {
                client_id: code.client_id.clone(),
                subject: subject.clone(),
            };
            if self.lwa_codes.insert(code.code.clone(), grant).is_some() {
                return Err("duplicate LWA authorization code".to_string());
            }
        }
        Ok(())
    }

    /// A fresh opaque ETag; never repeats, even across restarts (random nonce).
    pub(crate) fn new_etag(&mut self, skill_id: &str, stage: &str) -> String {
        self.etag_counter += 1;
        let mut hasher = Sha256::new();
        hasher.update(self.etag_nonce.to_le_bytes());
        hasher.update(self.etag_counter.to_le_bytes());
        hasher.update(skill_id.as_bytes());
        hasher.update(stage.as_bytes());
        hex::encode(&hasher.finalize()[..16])
    }

    pub(crate) fn account_linking(&self, skill_id: &str, stage: &str) -> Option<(Value, String)> {
        let stage = Stage::parse(stage)?;
        let linking = self
            .skills
            .get(skill_id)?
            .stage(stage)?
            .account_linking
            .as_ref()?;
        Some((Value::Object(linking.config.clone()), linking.etag.clone()))
    }

    pub(crate) fn set_account_linking_out_of_band(
        &mut self,
        skill_id: &str,
        stage: &str,
        config: Value,
    ) {
        let Some(stage) = Stage::parse(stage) else {
            tracing::warn!(
                stage,
                "ignoring out-of-band account linking for unknown stage"
            );
            return;
        };
        let Value::Object(config) = config else {
            tracing::warn!("ignoring out-of-band account linking that is not a JSON object");
            return;
        };
        if !self.skills.contains_key(skill_id) {
            self.add_skill(skill_id, None);
        }
        let etag = self.new_etag(skill_id, stage.as_str());
        if let Some(slot) = self
            .skills
            .get_mut(skill_id)
            .and_then(|skill| skill.stage_mut(stage))
        {
            slot.account_linking = Some(Linking { config, etag });
        }
    }

    pub(crate) fn delete_account_linking_out_of_band(&mut self, skill_id: &str, stage: &str) {
        if let Some(slot) = Stage::parse(stage).and_then(|stage| {
            self.skills
                .get_mut(skill_id)
                .and_then(|skill| skill.stage_mut(stage))
        }) {
            slot.account_linking = None;
        }
    }

    pub(crate) fn stage_enabled(&self, skill_id: &str, stage: &str) -> bool {
        Stage::parse(stage).is_some_and(|stage| {
            self.skills
                .get(skill_id)
                .is_some_and(|skill| skill.enabled_stage == Some(stage))
        })
    }

    pub(crate) fn set_stage_enabled(&mut self, skill_id: &str, stage: &str, enabled: bool) {
        let Some(stage) = Stage::parse(stage) else {
            return;
        };
        if let Some(skill) = self.skills.get_mut(skill_id) {
            if enabled {
                skill.enabled_stage = Some(stage);
            } else if skill.enabled_stage == Some(stage) {
                skill.enabled_stage = None;
            }
        }
    }

    pub(crate) fn customer_enablement(
        &self,
        customer: &str,
        skill_id: &str,
    ) -> Option<CustomerEnablementRecord> {
        self.customers
            .get(customer)?
            .enablements
            .get(skill_id)
            .cloned()
    }

    pub(crate) fn remove_customer_enablement(&mut self, customer: &str, skill_id: &str) {
        if let Some(customer) = self.customers.get_mut(customer) {
            customer.enablements.remove(skill_id);
        }
    }

    pub(crate) fn add_partner_code(&mut self, code: &str, customer: &str) {
        self.partner_codes
            .insert(code.to_string(), customer.to_string());
    }

    pub(crate) fn add_lwa_customer_code(&mut self, code: &str, client_id: &str, customer: &str) {
        self.lwa_codes.insert(
            code.to_string(),
            Grant {
                client_id: client_id.to_string(),
                subject: Subject::Customer(customer.to_string()),
            },
        );
    }

    /// Adds a skill with both stages (no-op when it exists).
    pub(crate) fn add_skill(&mut self, skill_id: &str, vendor_id: Option<&str>) {
        if skill_id.is_empty() || skill_id.len() > 255 || self.skills.contains_key(skill_id) {
            return;
        }
        let vendor = vendor_id.unwrap_or(&self.default_vendor).to_string();
        self.skills
            .insert(skill_id.to_string(), Skill::new(&vendor, &both_stages()));
    }

    pub(crate) fn skill_count(&self) -> usize {
        self.skills.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::{EnablementState, SimState, SkillState, Store, sandbox};
    use crate::Stage;

    #[test]
    fn sandbox_state_round_trips_through_yaml_and_loads() {
        let state = SimState::sandbox();
        let yaml = state.to_yaml().unwrap();
        let parsed = SimState::from_yaml(&yaml).unwrap();
        assert_eq!(parsed, state);
        let store = Store::from_state(&parsed).unwrap();
        assert_eq!(store.skill_count(), 4);
        assert_eq!(store.customers.len(), 3);
    }

    #[test]
    fn each_state_file_rule_names_what_is_wrong() {
        type Change = fn(&mut SimState);
        let skill = |id: &str| SkillState {
            id: id.to_string(),
            stages: vec![Stage::Development],
            enabled_stage: None,
            account_linking: BTreeMap::new(),
        };
        let cases: [(&str, Change, Option<&str>); 10] = [
            ("the sandbox", |_| {}, None),
            (
                "a dangling client reference",
                |state| state.lwa_clients.clear(),
                Some("a refresh token refers to unknown LWA client sandbox-client-id"),
            ),
            (
                "a duplicate client",
                |state| state.lwa_clients.push(state.lwa_clients[0].clone()),
                Some("duplicate LWA client sandbox-client-id"),
            ),
            (
                "a duplicate vendor",
                |state| state.vendors[1].id = sandbox::VENDOR_ID.to_string(),
                Some("empty or duplicate vendor id \"M2SANDBOXVENDOR\""),
            ),
            (
                "a skill two vendors own",
                |state| {
                    let skill = state.vendors[0].skills[0].clone();
                    state.vendors[1].skills.push(skill);
                },
                Some(
                    "skill id \"amzn1.ask.skill.00000000-0000-0000-0000-000000000001\" is empty, too long or duplicate",
                ),
            ),
            (
                "account linking on a stage the skill lacks",
                |state| {
                    let linking = state.vendors[0].skills[1].account_linking.clone();
                    let mut skill = state.vendors[0].skills[2].clone();
                    skill.account_linking =
                        linking.into_values().map(|v| (Stage::Live, v)).collect();
                    state.vendors[0].skills[2] = skill;
                },
                Some(
                    "skill amzn1.ask.skill.00000000-0000-0000-0000-000000000003 has account linking for stage live it does not have",
                ),
            ),
            (
                "invalid account linking",
                |state| {
                    let skill = &mut state.vendors[0].skills[0];
                    skill
                        .account_linking
                        .insert(Stage::Live, json!({"type": "AUTH_CODE"}));
                },
                Some(
                    "account linking of skill amzn1.ask.skill.00000000-0000-0000-0000-000000000001 stage live: Property 'accountLinkingRequest.accessTokenUrl' is required when type is AUTH_CODE.; Property 'accountLinkingRequest.accessTokenScheme' is required when type is AUTH_CODE.",
                ),
            ),
            (
                "a duplicate customer",
                |state| state.customers.push(state.customers[0].clone()),
                Some("empty or duplicate customer \"na-customer\""),
            ),
            (
                "an enablement of an unknown skill",
                |state| {
                    state.customers[0].enablements.push(EnablementState {
                        skill_id: "amzn1.ask.skill.unknown".to_string(),
                        stage: Stage::Live,
                    })
                },
                Some(
                    "customer na-customer has an enablement of unknown skill amzn1.ask.skill.unknown",
                ),
            ),
            (
                "a partner code two customers hold",
                |state| {
                    let code = state.customers[0].partner_auth_codes[0].clone();
                    state.customers[1].partner_auth_codes.push(code);
                },
                Some("duplicate partner auth code for eu-customer"),
            ),
        ];
        for (case, change, expected) in cases {
            let mut state = SimState::sandbox();
            change(&mut state);
            assert_eq!(
                Store::from_state(&state).err().as_deref(),
                expected,
                "{case}"
            );
        }
        let mut state = SimState::sandbox();
        state.vendors[0].skills.push(skill("amzn1.ask.skill.extra"));
        assert_eq!(Store::from_state(&state).map(|s| s.skill_count()), Ok(5));
    }
}
