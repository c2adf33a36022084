//! Client for Amazon's Skill Management API (SMAPI), the Skill Enablement API and Login with
//! Amazon (LWA). This is the only module that knows HTTP details of those APIs.
